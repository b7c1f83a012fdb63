"""The editors' JSON endpoints (the face/box editor's and the mask editor's save): a request body read
within a size limit, and a domain error answered as JSON with its status."""

from flask import jsonify, request

from ..errors import Conflict, InvalidInput, NotFound, OiapError
from .edits import parse_json_body


def json_body(limit: int, hint: str = "") -> dict:
    """The request's JSON object; InvalidInput unless it is sent as JSON and is at most `limit` bytes
    (`hint` ends the too-large message: what to send instead)."""
    if not request.is_json:
        raise InvalidInput("send the body as application/json")
    too_big = f"the body is larger than {limit} bytes{hint}"
    if request.content_length is not None and request.content_length > limit:
        raise InvalidInput(too_big)
    # Read at most one byte past the limit, so a body without a length cannot fill memory.
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise InvalidInput(too_big)
    return parse_json_body(raw, limit)


def json_error(e: OiapError):
    """A domain error as {"error": ...}: 409 for a conflict (someone saved first), 404, else 400."""
    code = 409 if isinstance(e, Conflict) else 404 if isinstance(e, NotFound) else 400
    return jsonify({"error": str(e)}), code
