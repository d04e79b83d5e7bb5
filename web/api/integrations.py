"""``/api/v1/integrations/``: create, list, get, update, delete, start and stop a maintenance
(admins write)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from uuid import UUID

from flask import Response, jsonify, request
from marshmallow import EXCLUDE, Schema, fields, validate

from domain.configuration import (
    MAINTENANCE_MODES,
    MAX_MAINTENANCE_SECONDS,
    MaintenanceRefused,
)
from domain.heartbeat import DEFAULT_TIMEOUT, STATUS_NOT_ARMED
from domain.ids import PREFIX_INTEGRATION, public_id, random_token
from domain.integrations import INTEGRATION_TYPES
from domain.maintenance import start_maintenance as start_maintenance_of
from domain.maintenance import stop_maintenance as stop_maintenance_of
from projections.db import iso
from projections.queries import (
    integration_by_id,
    integration_name_taken,
    integrations_page,
)
from web import runtime
from web.api import (
    api,
    bad_request,
    caller_name,
    found,
    json_object,
    load_body,
    page_params,
    paginated,
    requires,
)
from web.api.schemas import (
    IntegrationSchema,
    IntegrationWriteSchema,
    flatten_templates,
    nest_templates,
)
from web.inbound import directory

# Types whose alerts do not arrive at an integration URL.
NO_URL_TYPES = ("manual", "inbound_email", "direct_paging", "maintenance")
integration_schema = IntegrationSchema()


def serialise(row: dict, now: str | None = None) -> dict:
    """The integration ``row`` in OnCall's shape; ``now`` (``iso`` text) decides whether its
    maintenance is still in force."""
    settings = runtime().settings
    kind = INTEGRATION_TYPES.get(row["type"])
    slug = row["type"].removeprefix("legacy_")
    link = None
    if row["type"] not in NO_URL_TYPES:
        link = f"{settings.base_url}/integrations/v1/{slug}/{row['token']}/"
    inbound_email = None
    if row["type"] == "inbound_email":
        inbound_email = f"{row['token']}@{settings.mail_domain}"
    return integration_schema.dump(
        {
            **row,
            "type": slug,
            "link": link,
            "inbound_email": inbound_email,
            "default_route": {
                "id": row["default_route_id"],
                "escalation_chain_id": row.get("default_route_escalation_chain_id"),
                "slack": {"channel_id": None, "enabled": False},
                "telegram": {"id": None, "enabled": False},
            },
            "templates": nest_templates(row["templates"]),
            "heartbeat": _heartbeat(row, link, kind),
            **_maintenance(row, now or iso(_now())),
        }
    )


def _maintenance(row: dict, now: str) -> dict:
    """The maintenance in force: one whose end has passed is over, with no event needed."""
    end_at = row.get("maintenance_end_at")
    if end_at is None or end_at <= now:  # fixed-width ISO text: compared as text
        return {"maintenance_mode": None, "maintenance_started_at": None, "maintenance_end_at": None}
    return {
        "maintenance_mode": row["maintenance_mode"],
        # OnCall's format: whole seconds
        "maintenance_started_at": row["maintenance_started_at"][:19] + "Z",
        "maintenance_end_at": end_at[:19] + "Z",
    }


def _heartbeat(row: dict, link: str | None, kind) -> dict | None:
    if not (link and kind and kind.has_heartbeat):
        return None
    return {
        "link": f"{link}heartbeat/",
        "timeout_seconds": row.get("heartbeat_timeout_seconds") or DEFAULT_TIMEOUT,
        "last_heartbeat_time": row.get("last_heartbeat_at"),
        "status": row.get("heartbeat_status") or STATUS_NOT_ARMED,
    }


def _load(partial: bool) -> dict:
    return load_body(IntegrationWriteSchema(), partial=partial)


def _integration_or_404(integration_id: str) -> dict:
    return found(integration_by_id, integration_id)


@api.get("/integrations/", strict_slashes=False)
def list_integrations():
    number, size = page_params()
    page = integrations_page(
        runtime().db, request.args.get("name"), request.args.get("team_id"), number, size
    )
    now = iso(_now())
    return jsonify(paginated(page, [serialise(row, now) for row in page.rows]))


@api.get("/integrations/<integration_id>/", strict_slashes=False)
def get_integration(integration_id: str):
    return jsonify(serialise(_integration_or_404(integration_id)))


@api.post("/integrations/", strict_slashes=False)
@requires("admin")
def create_integration():
    return jsonify(serialise(create_from(_load(partial=False)))), 201


def create_from(data: dict) -> dict:
    """Create an integration from loaded ``IntegrationWriteSchema`` data; its row once projected.
    Shared with the dashboard."""
    type_slug = data.get("type")
    if not type_slug:
        raise bad_request({"type": ["This field is required."]})
    if type_slug == "direct_paging":
        raise bad_request("Direct paging integrations can't be created")
    kind = INTEGRATION_TYPES.get(type_slug)
    if kind is None:
        raise bad_request("Invalid integration type")
    rt = runtime()
    team_id = data.get("team_id")
    name = data.get("name") or f"{kind.title} {random_token(4)}"
    if integration_name_taken(rt.db, name, team_id):
        raise bad_request("An integration with this name already exists for this team")
    templates = flatten_templates(data.get("templates") or {}, partial=True)
    integration, position = rt.config.create_integration(
        type=type_slug,
        name=name,
        token=random_token(),
        team_id=team_id,
        description_short=data.get("description_short"),
        templates={field: source for field, source in templates.items() if source},
        created_at=datetime.now(UTC),
    )
    rt.wait_for("config", position)
    return integration_by_id(rt.db, public_id(PREFIX_INTEGRATION, integration.id))


@api.route("/integrations/<integration_id>/", methods=["PUT", "PATCH"], strict_slashes=False)
@requires("admin")
def update_integration(integration_id: str):
    row = _integration_or_404(integration_id)
    data = _load(partial=True)
    rt = runtime()
    team_id = data.get("team_id", row["team_id"])
    name = data.get("name")
    if name is not None and integration_name_taken(rt.db, name, team_id, except_id=integration_id):
        raise bad_request("An integration with this name already exists for this team")
    changes = {}
    if "description_short" in data:
        changes["description_short"] = data["description_short"]
    if "team_id" in data:
        changes["team_id"] = data["team_id"]
    position = rt.config.update_integration(
        UUID(row["uuid"]),
        name=name,
        templates=flatten_templates(data.get("templates") or {}, partial=True),
        **changes,
    )
    rt.wait_for("config", position)
    timeout = (data.get("heartbeat") or {}).get("timeout_seconds")
    if timeout is not None:
        rt.wait_for("alerting", rt.alerting.change_heartbeat(UUID(row["uuid"]), _now(), timeout_seconds=timeout))
    return jsonify(serialise(_integration_or_404(integration_id)))


@api.post("/integrations/<integration_id>/heartbeat/reset", strict_slashes=False)
@requires("admin")
def reset_heartbeat(integration_id: str):
    """Disarm the heartbeat: no expiry until the next ping arms it again."""
    row = _integration_or_404(integration_id)
    rt = runtime()
    rt.wait_for("alerting", rt.alerting.change_heartbeat(UUID(row["uuid"]), _now(), reset=True))
    return jsonify(serialise(_integration_or_404(integration_id)))


def _now() -> datetime:
    return datetime.now(UTC)


# --- maintenance ----------------------------------------------------------------------------------

# A duration as text: digits only (what ``int()`` takes beyond that, such as "1_000", is refused).
_DURATION_TEXT = re.compile(r"\s*\+?[0-9]{1,12}\s*")


class MaintenanceStartSchema(Schema):
    """For the OpenAPI document; the handler parses the body as OnCall does."""

    class Meta:
        unknown = EXCLUDE  # other fields are ignored

    mode = fields.String(required=True, validate=validate.OneOf(MAINTENANCE_MODES),
                         metadata={"description": "debug or maintenance, in any case"})
    duration = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_MAINTENANCE_SECONDS),
                              metadata={"description": "seconds"})


def _maintenance_mode(body: dict) -> str:
    mode = body.get("mode")
    if not isinstance(mode, str) or mode.lower() not in MAINTENANCE_MODES:
        raise bad_request({"mode": ["Unknown mode"]})
    return mode.lower()


def _maintenance_duration(body: dict) -> int:
    """Whole seconds, as a number or as digits (OnCall takes what ``int()`` takes), from 1 to a century."""
    duration = body.get("duration")
    text = isinstance(duration, str) and _DURATION_TEXT.fullmatch(duration) is not None
    if text or (isinstance(duration, float) and duration.is_integer()):
        duration = int(duration)
    if isinstance(duration, bool) or not isinstance(duration, int) or not 0 < duration <= MAX_MAINTENANCE_SECONDS:
        raise bad_request({"duration": ["Invalid duration"]})
    return duration


@api.post("/integrations/<integration_id>/maintenance_start", strict_slashes=False)
@requires("admin")
def start_maintenance(integration_id: str):
    """Debug mode escalates nothing; maintenance mode also collects every alert into one group."""
    row = _integration_or_404(integration_id)
    body = json_object(empty_is={})  # no body at all: the mode is missing, as OnCall answers
    mode, duration = _maintenance_mode(body), _maintenance_duration(body)
    rt = runtime()
    try:
        _, position = start_maintenance_of(rt.config, UUID(row["uuid"]), mode, duration, by=caller_name(), at=_now())
    except MaintenanceRefused as refused:
        raise bad_request(str(refused))
    rt.wait_for("config", position)
    return jsonify(serialise(_integration_or_404(integration_id)))


@api.post("/integrations/<integration_id>/maintenance_stop", strict_slashes=False)
@requires("admin")
def stop_maintenance(integration_id: str):
    """Stop the maintenance in force (none: nothing changes); its group is resolved by the ticker."""
    row = _integration_or_404(integration_id)
    rt = runtime()
    rt.wait_for("config", stop_maintenance_of(rt.config, UUID(row["uuid"]), by=caller_name(), at=_now()))
    return jsonify(serialise(_integration_or_404(integration_id)))


def add_to_spec(spec) -> None:
    """The maintenance paths, for ``web.api.openapi``."""
    spec.components.schema("MaintenanceStart", schema=MaintenanceStartSchema)
    parameters = [{"in": "path", "name": "id", "required": True, "schema": {"type": "string"}}]
    errors = {
        status: {"description": description, "content": {"application/json": {"schema": "Error"}}}
        for status, description in (("400", "Invalid request"), ("403", "Invalid token or role"), ("404", "Not found"))
    }
    integration = {"200": {"description": "The integration", "content": {"application/json": {"schema": "Integration"}}}}
    spec.path(
        "/api/v1/integrations/{id}/maintenance_start", parameters=parameters,
        operations={"post": {
            "summary": "Start a maintenance (admins): debug mode escalates nothing, maintenance mode also "
                       "collects every alert into one group until it ends. 400 when one is in force already.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": "MaintenanceStart"}}},
            "responses": {**integration, **errors},
        }},
    )  # fmt: skip
    spec.path(
        "/api/v1/integrations/{id}/maintenance_stop", parameters=parameters,
        operations={"post": {
            "summary": "Stop the maintenance in force, if any (admins); its group is resolved by stop maintenance",
            "responses": {**integration, **errors},
        }},
    )  # fmt: skip


@api.delete("/integrations/<integration_id>/", strict_slashes=False)
@requires("admin")
def delete_integration(integration_id: str):
    row = _integration_or_404(integration_id)
    rt = runtime()
    at = datetime.now(UTC)
    position = rt.config.delete_integration(UUID(row["uuid"]), at=at)
    rt.wait_for("config", position)
    directory.forget()
    # After the deletion is stored: if this stops in between, the heartbeat's next deadline sees
    # the deletion and disarms it then.
    rt.wait_for("alerting", rt.alerting.retire_heartbeat(UUID(row["uuid"]), at=at))
    return Response(status=204)
