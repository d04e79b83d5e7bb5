"""``/api/v1/alert_groups/``: list, get, actions, and the audit timeline."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from uuid import UUID

from flask import Response, jsonify, request
from marshmallow import ValidationError

from domain.alert_group import ActionRefused
from projections.queries import alert_group, alert_groups_page, timeline
from web import runtime
from web.api import api, bad_request, caller_name, not_found, page_params, paginated, requires
from web.api.schemas import AlertGroupSchema, SilenceSchema, TimelineSchema

STATES = ("new", "acknowledged", "resolved", "silenced")
STARTED_AT_FORMAT = "%Y-%m-%dT%H:%M:%S"
group_schema = AlertGroupSchema()


def _serialise(row: dict) -> dict:
    settings = runtime().settings
    last_alert = None
    if row.get("last_alert_id"):
        last_alert = {
            "id": row["last_alert_id"],
            "alert_group_id": row["id"],
            "created_at": row["last_alert_created_at"],
            "payload": json.loads(row["last_alert_payload"]) if row.get("last_alert_payload") else None,
        }
    return group_schema.dump(
        {
            **row,
            "team_id": None,
            "created_at": row["started_at"],
            "labels": [],
            "permalinks": {
                "slack": None,
                "slack_app": None,
                "telegram": None,
                "web": f"{settings.base_url}/alert-groups/{row['id']}",
            },
            "last_alert": last_alert,
        }
    )


def _filters() -> dict:
    args = request.args
    filters = {name: args.get(name) for name in ("id", "integration_id", "route_id")}
    # As OnCall: case-insensitive, and an empty value is no filter.
    state = (args.get("state") or "").lower()
    if state:
        if state not in STATES:
            raise bad_request({"state": f"Must be one of the following: {', '.join(STATES)}"})
        filters["state"] = "firing" if state == "new" else state
    started_at = args.get("started_at")
    if started_at:
        try:
            start, end = (
                datetime.strptime(part, STARTED_AT_FORMAT).replace(tzinfo=timezone.utc)
                for part in started_at.split("_")
            )
        except ValueError:
            raise bad_request(
                {"started_at": "Invalid range value. Use %Y-%m-%dT%H:%M:%S_%Y-%m-%dT%H:%M:%S"}
            )
        filters["started_after"] = start.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        filters["started_before"] = end.strftime("%Y-%m-%dT%H:%M:%S.999999Z")
    return filters


@api.get("/alert_groups/", strict_slashes=False)
def list_alert_groups():
    number, size = page_params()
    page = alert_groups_page(runtime().db, _filters(), number, size)
    return jsonify(paginated(page, [_serialise(row) for row in page.rows]))


def _group_or_404(group_id: str) -> dict:
    row = alert_group(runtime().db, group_id)
    if row is None:
        not_found()
    return row


@api.get("/alert_groups/<group_id>/", strict_slashes=False)
def get_alert_group(group_id: str):
    return jsonify(_serialise(_group_or_404(group_id)))


@api.get("/alert_groups/<group_id>/timeline/", strict_slashes=False)
def get_timeline(group_id: str):
    _group_or_404(group_id)
    rows = [{**row, "realm": "alert_group"} for row in timeline(runtime().db, group_id)]
    return jsonify(TimelineSchema().dump({"alert_group_id": group_id, "results": rows}))


def _act(group_id: str, action: str, **kwargs) -> Response:
    row = _group_or_404(group_id)
    rt = runtime()
    try:
        position = rt.alerting.act(
            UUID(row["uuid"]), action, by=caller_name(), at=datetime.now(timezone.utc), **kwargs
        )
    except ActionRefused as refused:
        raise bad_request(str(refused))
    rt.wait_for("alerting", position)  # the next GET shows the change
    return Response(status=200)


@api.post("/alert_groups/<group_id>/acknowledge", strict_slashes=False)
@requires("editor")
def acknowledge(group_id: str):
    return _act(group_id, "acknowledge")


@api.post("/alert_groups/<group_id>/unacknowledge", strict_slashes=False)
@requires("editor")
def unacknowledge(group_id: str):
    return _act(group_id, "unacknowledge")


@api.post("/alert_groups/<group_id>/resolve", strict_slashes=False)
@requires("editor")
def resolve(group_id: str):
    return _act(group_id, "resolve")


@api.post("/alert_groups/<group_id>/unresolve", strict_slashes=False)
@requires("editor")
def unresolve(group_id: str):
    return _act(group_id, "unresolve")


@api.post("/alert_groups/<group_id>/silence", strict_slashes=False)
@requires("editor")
def silence(group_id: str):
    body = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(body, dict) or body.get("delay") is None:
        raise bad_request("delay is required")
    try:
        delay = SilenceSchema().load(body)["delay"]
    except ValidationError:
        raise bad_request("invalid delay value")
    return _act(group_id, "silence", delay=delay)


@api.post("/alert_groups/<group_id>/unsilence", strict_slashes=False)
@requires("editor")
def unsilence(group_id: str):
    return _act(group_id, "unsilence")
