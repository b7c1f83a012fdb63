"""Flask-WTF's CSRF protection, without re-deriving the same signatures on every request.

Every rating is a POST whose token Flask-WTF checks by building a serializer, deriving its key and
verifying an HMAC (~0.13 ms), and every item fragment signs a fresh token (~0.04 ms). With
WTF_CSRF_TIME_LIMIT None (tokens never expire, see init_auth) the outcome depends only on the secret
key, the session's raw token and the token sent, so a pair that verified once verifies again: it is
remembered per process. A token that was never verified, a different session, or another secret key
goes through Flask-WTF exactly as before; with a time limit set nothing is remembered.
"""

from flask import current_app, g, request, session
from flask_wtf.csrf import CSRFProtect, generate_csrf

_MAX = 4096  # remembered pairs per process (a few per logged-in session); cleared when full
_verified: dict[tuple, bool] = {}
_signed: dict[tuple, str] = {}


def _cacheable() -> bool:
    cfg = current_app.config
    return cfg.get("WTF_CSRF_TIME_LIMIT", 3600) is None and not (
        request.is_secure and cfg["WTF_CSRF_SSL_STRICT"]
    )


def _key(raw) -> tuple:
    cfg = current_app.config
    return (cfg.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key, cfg["WTF_CSRF_FIELD_NAME"], raw)


def _remember(store: dict, key: tuple, value) -> None:
    if len(store) >= _MAX:
        store.clear()
    store[key] = value


class CachedCSRFProtect(CSRFProtect):
    """CSRFProtect that accepts again, without re-verifying, a (session, token) pair it verified."""

    def protect(self, apply_exemptions=False):
        """Validate CSRF on the current request (as CSRFProtect.protect)."""
        if request.method not in current_app.config["WTF_CSRF_METHODS"] or not _cacheable():
            return super().protect(apply_exemptions)
        raw = session.get(current_app.config["WTF_CSRF_FIELD_NAME"])
        token = self._get_csrf_token()
        key = _key((raw, token)) if raw and token else None
        if key is not None and key in _verified:
            g.csrf_valid = True
            return None
        super().protect(apply_exemptions)  # aborts with 400 when the token is wrong
        if key is not None and g.get("csrf_valid"):
            _remember(_verified, key, True)
        return None


def csrf_token() -> str:
    """The session's signed CSRF token for a template (as Flask-WTF's csrf_token()), signed once per session."""
    field = current_app.config["WTF_CSRF_FIELD_NAME"]
    if field in g or not _cacheable() or not session.get(field):
        return generate_csrf()
    key = _key(session[field])
    token = _signed.get(key)
    if token is None:
        token = generate_csrf()
        _remember(_signed, key, token)
        _remember(_verified, _key((session[field], token)), True)
    setattr(g, field, token)
    return token
