"""Public API v1, in Grafana OnCall's shapes (paths, fields, filters, pagination, errors)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from eventsourcing.application import AggregateNotFoundError
from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from marshmallow import Schema, ValidationError

from adapters.expiring_cache import ExpiringCache
from domain.applications import Configuration
from domain.configuration import ROLES, token_digest
from projections.db import Database
from projections.queries import Page, api_token_by_hash
from web import runtime

api = Blueprint("api", __name__, url_prefix="/api/v1")

# Also how long a revoked token may still be accepted after `tocsin token revoke` returns.
TOKEN_CACHE_SECONDS = 5.0
_callers = ExpiringCache(ttl=TOKEN_CACHE_SECONDS)


class ApiError(Exception):
    def __init__(self, status: int, body: dict):
        self.status = status
        self.body = body


def bad_request(detail) -> ApiError:
    return ApiError(400, {"detail": detail} if isinstance(detail, str) else detail)


@api.errorhandler(ApiError)
def api_error(exc: ApiError):
    return jsonify(exc.body), exc.status


def _caller(header: str) -> dict | None:
    token = header.removeprefix("Bearer ").strip()
    if not token:
        return None
    digest = token_digest(token)
    return _callers.get_or_load(digest, lambda: api_token_by_hash(runtime().db, digest))


@api.before_request
def authenticate():
    if request.endpoint in ("api.openapi_document", "api.export_schedule"):  # the export checks its own token
        return None
    caller = _caller(request.headers.get("Authorization", ""))
    if caller is None:
        return jsonify({"detail": "Invalid token."}), 403
    g.caller = caller
    return None


def requires(role: str):
    """Viewers read, editors act on alert groups, admins manage integrations."""

    def decorate(view):
        @wraps(view)
        def checked(*args, **kwargs):
            if ROLES.index(g.caller["role"]) < ROLES.index(role):
                raise ApiError(403, {"detail": "You do not have permission to perform this action."})
            return view(*args, **kwargs)

        return checked

    return decorate


def caller_name() -> str:
    return g.caller["name"]


# Larger page sizes are cut to this (as Django REST framework's max_page_size does), and page
# numbers to what the databases can take as an offset.
MAX_PAGE_SIZE = 1000
MAX_PAGE_NUMBER = 2**31 - 1


def page_params(default_size: int = 50) -> tuple[int, int]:
    def number(name: str, default: int, largest: int) -> int:
        try:
            value = int(request.args.get(name, default))
        except ValueError:
            return default
        return min(value, largest) if value >= 1 else default

    return number("page", 1, MAX_PAGE_NUMBER), number("perpage", default_size, MAX_PAGE_SIZE)


def paginated(page: Page, results: list) -> dict:
    base = runtime().settings.base_url + request.path

    def link(number: int) -> str:
        args = request.args.to_dict()
        args["page"] = str(number)
        args.setdefault("perpage", str(page.size))
        return base + "?" + urlencode(args)

    return {
        "count": page.count,
        "next": link(page.number + 1) if page.number < page.total_pages else None,
        "previous": link(page.number - 1) if page.number > 1 else None,
        "results": results,
        "page_size": page.size,
        "current_page_number": page.number,
        "total_pages": page.total_pages,
    }


def json_text(value) -> str:
    """``value`` as JSON the way ``jsonify`` writes it outside debug mode: compact and ASCII."""
    return json.dumps(value, separators=(",", ":"))


def json_response(*parts: bytes) -> Response:
    """A ``jsonify``-alike response whose body, already JSON, is joined from ``parts``.

    Joined once: a page of large payloads costs a copy per join.
    """
    return current_app.response_class(b"".join((*parts, b"\n")), mimetype=current_app.json.mimetype)


def paginated_response(page: Page, results_json: list[bytes]) -> Response:
    """``paginated()``'s envelope, keys in its order, around results already written as JSON."""
    parts = []
    for key, value in paginated(page, []).items():
        parts += (b"," if parts else b"{", json_text(key).encode(), b":")
        if key == "results":
            parts.append(b"[")
            for index, result in enumerate(results_json):
                parts += (b",", result) if index else (result,)
            parts.append(b"]")
        else:
            parts.append(json_text(value).encode())
    parts.append(b"}")
    return json_response(*parts)


def json_object(empty_is: dict | None = None) -> dict:
    """The request's body, a JSON object; 400 "A JSON object is expected." for anything else (a
    body nested too deep to parse too). ``empty_is``: what a request with no body counts as
    (None: refused like any other)."""
    if empty_is is not None and not request.get_data():
        return dict(empty_is)
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested too deep for the parser
        body = None
    if not isinstance(body, dict):
        raise bad_request("A JSON object is expected.")
    return body


def load_body(schema: Schema, partial: bool = False) -> dict:
    """The request's JSON object through ``schema``; 400 with field errors otherwise."""
    try:
        return schema.load(json_object(), partial=partial)
    except ValidationError as invalid:
        raise bad_request(invalid.messages)


def config_change(change: Callable[[Configuration], int | None]) -> None:
    """Run a configuration command (404 when what it changes was deleted meanwhile) and wait until
    the read models show it, so the answer and the next request see the change."""
    rt = runtime()
    try:
        position = change(rt.config)
    except AggregateNotFoundError:
        not_found()
    rt.wait_for("config", position)


def not_found():
    abort(404)


def found(lookup: Callable[[Database, str], dict | None], public_id: str) -> dict:
    """The row ``lookup`` finds for ``public_id`` in the read models, or a 404."""
    row = lookup(runtime().db, public_id)
    if row is None:
        not_found()
    return row


# Imported for their routes (each module registers its own on ``api``).
from web.api import (  # noqa: F401
    alert_groups,
    alerts,
    direct_paging,
    escalation_chains,
    escalation_policies,
    integrations,
    on_call_shifts,
    openapi,
    personal_notification_rules,
    routes,
    schedules,
    teams,
    template_preview,
    users,
    webhooks,
)
