"""Inbound integration URLs (OnCall's ``/integrations/v1/<type>/<token>/``).

Thin: find the integration, check the URL type, parse the body, commit it to the inbox, answer.
Everything else happens in ingest, after the 2xx.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from uuid import UUID

from flask import Blueprint, Response, jsonify, render_template_string, request
from markupsafe import escape

from domain.inbox import KIND_ALERT, HeartbeatPing, ReceivedAlert
from domain.integrations import INTEGRATION_TYPES
from projections.directory import IntegrationDirectory
from web import runtime
from web.errors import load_json
from web.ratelimit import refuse_if_limited, refused_note

inbound = Blueprint("inbound", __name__, url_prefix="/integrations/v1")

# The alertmanager and grafana_alerting URLs also take their legacy types' tokens.
URL_TYPES = {
    "alertmanager": {"alertmanager", "legacy_alertmanager"},
    "grafana_alerting": {"grafana_alerting", "legacy_grafana_alerting"},
}
# OnCall's answer to an accepted alert: the JSON string "Ok.", as jsonify writes it (built once).
ACCEPTED_BODY = b'"Ok."\n'

PAGE = """<!doctype html>
<html><head><title>Tocsin integration {{ name }}</title></head>
<body><h1>This is a Tocsin integration link</h1>
<p>Integration <strong>{{ name }}</strong> ({{ type_title }}) receives alerts at this URL.</p>
<p>Send them with <code>POST {{ url }}</code> and a JSON body.</p>
{% if refused_note %}<p>{{ refused_note }}</p>{% endif %}</body></html>
"""


directory = IntegrationDirectory(lambda: runtime().db)


class BadPayload(Exception):
    def __init__(self, status: int, body: Response | str):
        self.status = status
        self.body = body


def _title(type_slug: str) -> str:
    kind = INTEGRATION_TYPES.get(type_slug)
    return kind.title if kind else type_slug


def find_integration(url_type: str, token: str) -> tuple[dict | None, Response | None]:
    integration = directory.find(token)
    if integration is None:
        return None, Response(
            "Integration key was not found. Permission denied.", status=403, mimetype="text/html"
        )
    if integration["type"] not in URL_TYPES.get(url_type, {url_type}):
        return None, Response(
            f"This url is for integration with {_title(url_type)}. "
            f"Key is for {_title(integration['type'])}",
            status=400,
            mimetype="text/plain",
        )
    return integration, None


# A lone surrogate (an escaped \ud800, or its raw UTF-8 bytes) parses, but no store can encode it.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _load_json(raw: bytes) -> object:
    """Parse strictly: NaN/Infinity, absurd nesting or a lone surrogate would be stored, then
    break every reader."""
    payload = load_json(raw)
    if _MAYBE_SURROGATE.search(raw):
        json.dumps(payload, ensure_ascii=False).encode()  # UnicodeEncodeError is a ValueError
    return payload


def parse_body() -> object:
    """The request body as a payload: JSON, or a form as a flat object (last value wins)."""
    raw = request.get_data(cache=True)  # enforces MAX_CONTENT_LENGTH (413)
    mimetype = (request.mimetype or "").lower()
    if not raw and mimetype in ("", "application/json"):
        return {}
    if mimetype == "application/json" or mimetype.endswith("+json"):
        try:
            return _load_json(raw)
        except ValueError as exc:
            raise BadPayload(400, jsonify({"detail": f"JSON parse error - {exc}"}))
    if mimetype == "application/x-www-form-urlencoded":
        return {key: values[-1] for key, values in request.form.lists()}
    if mimetype == "multipart/form-data":
        if request.files:
            raise BadPayload(400, "File uploads are not allowed")
        return {key: values[-1] for key, values in request.form.lists()}
    shown = request.content_type or ""
    raise BadPayload(415, jsonify({"detail": f'Unsupported media type "{shown}" in request.'}))


def _now() -> datetime:
    return datetime.now(UTC)


@inbound.route("/<url_type>/<token>/", methods=["GET", "HEAD", "POST"], strict_slashes=False)
def receive(url_type: str, token: str):
    integration, refusal = find_integration(url_type, token)
    if refusal is not None:
        return refusal
    if request.method in ("GET", "HEAD"):
        return render_template_string(
            PAGE,
            name=escape(integration["name"]),
            type_title=_title(integration["type"]),
            url=request.base_url,
            refused_note=refused_note(integration),
        )
    limited = refuse_if_limited(integration)
    if limited is not None:
        return limited
    try:
        payload = parse_body()
    except BadPayload as bad:
        return bad.body, bad.status
    entry = ReceivedAlert(
        integration_id=_uuid(integration),
        kind=KIND_ALERT,
        payload_json=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
        received_at=_now(),
    )
    runtime().committer.submit(entry)
    return Response(ACCEPTED_BODY, mimetype="application/json")


@inbound.route("/<url_type>/<token>/heartbeat/", methods=["GET", "POST"], strict_slashes=False)
def heartbeat(url_type: str, token: str):
    # As in OnCall, any valid token works under any heartbeat URL type.
    integration = directory.find(token)
    if integration is None:
        return Response("Integration key was not found. Permission denied.", status=403, mimetype="text/html")
    limited = refuse_if_limited(integration, heartbeat=True)
    if limited is not None:
        return limited
    runtime().committer.submit(HeartbeatPing(integration_id=_uuid(integration), received_at=_now()))
    if request.method == "GET":
        return jsonify(":)")
    return Response(status=200)


def _uuid(integration: dict) -> UUID:
    return UUID(integration["uuid"])
