"""URLs from imported fields (AuthorProfileURL, OriginalURL, License, a set file's url fields).

Pages turn these into links, so a `javascript:` or `data:` URL in a metadata file would be a
script the page runs with the reviewer's session. Only absolute http and https URLs are kept, at
import and again when a page renders one (the `http_url` template filter), for rows imported before.
"""

from urllib.parse import urlsplit

SCHEMES = ("http", "https")


def http_url(value: object) -> str | None:
    """The value when it is an absolute http(s) URL with a host, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    # Browsers drop tabs and newlines inside a URL and ignore leading control characters, so
    # "java\tscript:" is javascript: to them; refuse any such character outright.
    if not text or any(ord(c) < 0x21 or c == "\x7f" for c in text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in SCHEMES or not parts.netloc:
        return None
    return text
