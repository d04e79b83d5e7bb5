"""Hostile request bodies and HTTP errors: a clear 4xx with OnCall's ``{"detail": ...}``, never a 500.

Every JSON body the app parses (API bodies and inbound alerts alike) is refused when it nests
deeper than ``MAX_JSON_DEPTH``, and an inbound alert also when it holds NaN or Infinity: such a
value would be stored and then break whoever reads it (a renderer, a page of the API).
"""

from __future__ import annotations

import json
import math

from flask import Flask, has_request_context, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

# Real alert payloads nest a handful of levels; a hundred leaves room for any sender.
MAX_JSON_DEPTH = 100
# Paths whose errors are JSON, as OnCall's (Django REST framework's) are.
JSON_ERROR_PREFIXES = ("/api/", "/integrations/")


def _non_finite(text: str):
    raise ValueError(f"Out of range float values are not JSON compliant: {text!r}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        _non_finite(text)
    return value


def nests_deeper_than(value: object, limit: int) -> bool:
    """Whether ``value`` has lists or objects more than ``limit`` levels deep (without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def load_json(raw: str | bytes, finite_only: bool = True) -> object:
    """Parse a request body; every refusal is a ``ValueError`` with a readable reason.

    ``finite_only`` refuses NaN and Infinity, which Python's parser takes but JSON has not.
    """
    try:
        if finite_only:
            value = json.loads(raw, parse_float=_finite_float, parse_constant=_non_finite)
        else:
            value = json.loads(raw)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    # Counting brackets is cheap and bounds the depth: most bodies need no walk at all.
    brackets = (b"[", b"{") if isinstance(raw, bytes) else ("[", "{")
    opened = raw.count(brackets[0]) + raw.count(brackets[1])
    if opened > MAX_JSON_DEPTH and isinstance(value, (dict, list)) and nests_deeper_than(value, MAX_JSON_DEPTH):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


class RequestJSONProvider(DefaultJSONProvider):
    """Flask's JSON, parsing request bodies as ``load_json`` does: ``request.get_json`` answers
    400 (or None when silent) instead of raising ``RecursionError``. NaN is left to each view."""

    def loads(self, s: str | bytes, **kwargs) -> object:
        if has_request_context():
            return load_json(s, finite_only=False)
        return super().loads(s, **kwargs)  # e.g. a test reading a response


def _json_error(exc: HTTPException):
    """A 4xx under the API or integration URLs as JSON ``{"detail": ...}`` instead of an HTML page."""
    if exc.code is None or exc.code >= 500 or not request.path.startswith(JSON_ERROR_PREFIXES):
        return exc
    response = jsonify({"detail": exc.description})
    response.status_code = exc.code
    for name, value in exc.get_response().headers.items():  # Allow, Retry-After, WWW-Authenticate...
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def install(app: Flask) -> None:
    app.json = RequestJSONProvider(app)
    app.json.sort_keys = False
    app.register_error_handler(HTTPException, _json_error)
