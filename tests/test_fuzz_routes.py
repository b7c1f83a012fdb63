"""Every route, as an admin, with hostile path parameters, query strings and form fields: never a 5xx."""

import re

import pytest

from app.db import connect
from app.imports.demo import build_demo
from tests.conftest import login

# Path values: real ids first (so the query fuzz reaches the handler), then hostile ones.
INT_PATH = ["1", "0", "-1", "9223372036854775807", "9223372036854775808", "99999999999999999999999999", "1e3"]
STR_PATH = [
    "zz",
    "0000000000000000",
    "ffffffffffffffff",
    "%F0%9F%92%A5",
    "a" * 300,
    "%00",
    "..%2F..%2Fetc%2Fpasswd",
    "1'%20OR%20'1'='1",
    "-1",
    "%C3%A9%C3%A9",
]
# Query-string and form values: wrong types, out of range, huge, unicode, NaN, separators.
HOSTILE = [
    "",
    "-1",
    "0",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "99999999999999999999999999",
    "abc",
    "💥",
    "x" * 10000,
    "\x00",
    "1,2,,x",
    "0:0",
    ":",
    "1:99999999999999999999999",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "2026-13-45T99:99",
    "[1,2",
]
NAMES = [
    "set", "page", "item", "cursor", "trail", "kind", "status", "order", "split", "min_score", "max_score",
    "user", "user_id", "since", "until", "before", "after", "action", "size", "pad", "box", "next",
    "format", "sets", "unrated", "unrated_weight", "annotation_id", "value", "image_id", "role", "active",
    "username", "password", "force", "q",
]  # fmt: skip
SKIP_ENDPOINTS = {"static", "auth.logout"}


@pytest.fixture
def store(app):
    db = connect(app.config["DATABASE"])
    build_demo(db)
    db.close()
    return app


def _routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP_ENDPOINTS:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def _paths(rule, real_image: str) -> list[str]:
    """URLs for the rule: the first with real values, then one per hostile value of each parameter."""
    names = re.findall(r"<(?:(\w+):)?(\w+)>", rule.rule)
    real = {n: ("1" if conv == "int" else real_image) for conv, n in names}

    def build(values):
        out = rule.rule
        for conv, n in names:
            out = out.replace(f"<{conv}:{n}>" if conv else f"<{n}>", values[n])
        return out

    urls = [build(real)]
    for conv, n in names:
        for v in INT_PATH[1:] if conv == "int" else STR_PATH:
            urls.append(build({**real, n: v}))
    return urls


def _check(client, method, url, failures, **kw):
    try:
        r = client.open(url, method=method, **kw)
    except Exception as e:  # TESTING propagates exceptions: each is a 500 in production
        failures.append((method, url[:120], {k: str(v)[:80] for k, v in kw.items()}, repr(e)[:200]))
        return None
    if r.status_code >= 500:
        failures.append((method, url[:120], {k: str(v)[:80] for k, v in kw.items()}, r.status_code))
    r.close()  # file responses (images) hold their file open until closed
    if r.status_code == 302 and r.headers.get("Location", "").startswith("/login"):
        login(client, "admin")
    return r


@pytest.mark.slow
def test_no_route_answers_5xx_to_hostile_input(store, admin_client, hx):
    image_id = connect(store.config["DATABASE"]).execute("SELECT id FROM images LIMIT 1").fetchone()[0]
    failures, n = [], 0
    for rule, method in _routes(store):
        urls = _paths(rule, image_id)
        for url in urls[1:]:
            _check(admin_client, method, url, failures)
            n += 1
        for i, name in enumerate(NAMES):
            # Each name with a few of the values (rotating), as a query string and as a form.
            for v in HOSTILE[i % 5 :: 5]:
                if method == "GET":
                    _check(admin_client, method, urls[0], failures, query_string={name: v})
                    _check(admin_client, method, urls[0], failures, query_string={name: v}, headers=hx)
                else:
                    _check(admin_client, method, urls[0], failures, data={name: v})
                n += 1
    assert n > 1000
    assert not failures, f"{len(failures)} requests answered 5xx: {failures[:20]}"
