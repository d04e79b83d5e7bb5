"""``/api/v1/webhooks/``: OnCall's outgoing webhooks (admins write, everyone reads), and
``/api/v1/webhooks/{id}/responses``: the last responses each one got.

OnCall's shape and texts: ``trigger_type`` by OnCall's public names (an unknown one answers
``{"detail": "trigger_type must one of [...]"}``), ``http_method`` one of OnCall's six, the url,
headers, data and trigger template checked as Jinja templates when saved, ``password`` and
``authorization_header`` shown as OnCall's mask when set (sending the mask back keeps them),
``integration_filter`` a list of integration ids (null or empty: every integration), ``preset``
always null and never settable. ``forward_whole_payload`` (the name in OnCall's legacy
``/actions`` API) is taken as ``forward_all``. Names are unique, regardless of case here. PUT and
PATCH both change only the fields sent; an update refuses blank texts, as OnCall's does.

Where OnCall lists only the responses of the webhook's own trigger type, Tocsin lists all of the
webhook's responses (a "status change" webhook's are recorded under the action that fired it),
newest first, the last 100.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from flask import Response, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from domain.ids import public_id
from domain.templating import validate_syntax
from domain.users import NameTaken
from domain.webhooks import HTTP_METHODS, MASK, PREFIX_WEBHOOK, TRIGGER_TYPES
from projections.queries import integration_by_id
from projections.users import team_by_id
from projections.webhooks import (
    WEBHOOKS_PAGE_SIZE,
    responses_page,
    webhook_by_id,
    webhooks_page,
)
from web import runtime
from web.api import (
    api,
    bad_request,
    config_change,
    found,
    load_body,
    not_found,
    page_params,
    paginated,
    requires,
)
from web.api.routes import MAX_ID_LENGTH, REQUIRED
from web.api.schemas import PageSchema, Text
from web.api.users import printable_name

# OnCall's texts.
NAME_TAKEN = "The fields name, organization must make a unique set."
INVALID_TRIGGER = f"trigger_type must one of {list(TRIGGER_TYPES)}"
INVALID_METHOD = f"Must be one of {list(HTTP_METHODS)}"
INTEGRATION_FILTER_MESSAGE = "integration_filter must be a list of valid integration ids"
PRESET_MESSAGE = "Preset webhooks must be modified through web UI"
BLANK = "This field may not be blank."
MAX_FILTERED_INTEGRATIONS = 1000  # a bound on what one request makes us look up
TEMPLATE_FIELDS = ("url", "headers", "data", "trigger_template")
# Texts that an update may not blank (OnCall's update serializer: allow_blank False).
NOT_BLANK_ON_UPDATE = ("username", "password", "authorization_header", *TEMPLATE_FIELDS)


def _longest(limit: int) -> validate.Length:
    return validate.Length(max=limit, error="Ensure this field has no more than {max} characters.")


def template(value: str) -> None:
    """A template that can render (length, syntax, known filters); OnCall's fallback text."""
    problem = validate_syntax(value) if value.strip() else None
    if problem:
        raise ValidationError(f"Template Error: {problem}")


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError(BLANK)


_BOOLEAN_ERRORS = {"invalid": "Must be a valid boolean.", "null": "This field may not be null."}


class WebhookWriteSchema(Schema):
    """A webhook as an admin sends it (OnCall's fields); on update every field is optional."""

    class Meta:
        unknown = EXCLUDE

    name = Text(required=True, error_messages=REQUIRED, validate=[_longest(100), printable_name])
    is_webhook_enabled = fields.Boolean(error_messages=_BOOLEAN_ERRORS)
    team = Text(allow_none=True, validate=validate.Length(max=MAX_ID_LENGTH),
                metadata={"description": "a team id (T...), or null"})  # fmt: skip
    data = Text(allow_none=True, validate=template, metadata={"description": "a template: the body"})
    username = Text(allow_none=True, validate=_longest(100))
    password = Text(allow_none=True, validate=_longest(1000),
                    metadata={"description": "the mask sent back keeps the password"})  # fmt: skip
    authorization_header = Text(allow_none=True, validate=_longest(2000),
                                metadata={"description": "the mask sent back keeps it"})  # fmt: skip
    trigger_template = Text(allow_none=True, validate=template,
                            metadata={"description": "a template: sent only when it renders true or 1"})  # fmt: skip
    headers = Text(allow_none=True, validate=template, metadata={"description": "a template: a JSON object"})
    url = Text(required=True, error_messages=REQUIRED, validate=[not_blank, template],
               metadata={"description": "a template: an http(s) URL"})  # fmt: skip
    forward_all = fields.Boolean(error_messages=_BOOLEAN_ERRORS)
    forward_whole_payload = fields.Boolean(error_messages=_BOOLEAN_ERRORS,
                                           metadata={"description": "forward_all's name in OnCall's /actions"})  # fmt: skip
    http_method = Text(required=True, error_messages=REQUIRED,
                       validate=validate.OneOf(HTTP_METHODS, error=INVALID_METHOD))  # fmt: skip
    trigger_type = Text(required=True, error_messages=REQUIRED, metadata={"enum": list(TRIGGER_TYPES)})
    integration_filter = fields.Raw(allow_none=True, metadata={
        "type": "array", "items": {"type": "string"}, "nullable": True,
        "description": "integration ids; null or empty: every integration"})  # fmt: skip
    preset = fields.Raw(allow_none=True, metadata={"description": "not settable: Tocsin has no presets"})


class WebhookSchema(Schema):
    """OnCall's webhook shape."""

    id = fields.String()
    name = fields.String()
    is_webhook_enabled = fields.Boolean()
    team = fields.String(allow_none=True)
    data = fields.String(allow_none=True)
    username = fields.String(allow_none=True)
    password = fields.String(allow_none=True)
    authorization_header = fields.String(allow_none=True)
    trigger_template = fields.String(allow_none=True)
    headers = fields.String(allow_none=True)
    url = fields.String()
    forward_all = fields.Boolean()
    http_method = fields.String(validate=validate.OneOf(HTTP_METHODS))
    trigger_type = fields.String(validate=validate.OneOf(TRIGGER_TYPES))
    integration_filter = fields.List(fields.String(), allow_none=True)
    preset = fields.String(allow_none=True)


class WebhookPageSchema(PageSchema):
    results = fields.List(fields.Nested(WebhookSchema))


class WebhookResponseSchema(Schema):
    """OnCall's response shape: what was sent (as rendered, ``Authorization`` masked) and what came back."""

    timestamp = fields.String()
    url = fields.String(allow_none=True)
    request_trigger = fields.String(allow_none=True)
    request_headers = fields.String(allow_none=True)
    request_data = fields.String(allow_none=True)
    status_code = fields.Integer(allow_none=True)
    content = fields.String(allow_none=True)
    event_data = fields.String(allow_none=True)


class WebhookResponsePageSchema(PageSchema):
    results = fields.List(fields.Nested(WebhookResponseSchema))


def shown(row: dict) -> dict:
    return {name: value for name, value in row.items() if name != "uuid"}


def _team_uuid(team_id: str | None) -> UUID | None:
    if team_id is None:
        return None
    team = team_by_id(runtime().db, team_id)
    if team is None:
        raise bad_request({"team": [f'Invalid pk "{team_id}" - object does not exist.']})
    return UUID(team["uuid"])


def _integration_uuids(value: object) -> list[UUID]:
    """OnCall's integration filter: empty (null, [] or left out) or a list of live integrations."""
    if not value:
        return []
    if (
        not isinstance(value, list)
        or len(value) > MAX_FILTERED_INTEGRATIONS
        or not all(isinstance(item, str) and len(item) <= MAX_ID_LENGTH for item in value)
    ):
        raise bad_request({"integration_filter": [INTEGRATION_FILTER_MESSAGE]})
    uuids = []
    for integration_id in dict.fromkeys(value):
        integration = integration_by_id(runtime().db, integration_id)
        if integration is None:
            raise bad_request({"integration_filter": [INTEGRATION_FILTER_MESSAGE]})
        uuids.append(UUID(integration["uuid"]))
    return uuids


def _settings(partial: bool) -> dict:
    """The request's settings (``domain.webhooks.SETTINGS`` names); 400 with OnCall's texts."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested too deep: load_body answers it
        body = None
    trigger_type = body.get("trigger_type") if isinstance(body, dict) else None
    if trigger_type is not None and trigger_type not in TRIGGER_TYPES:
        raise bad_request(INVALID_TRIGGER)  # OnCall answers this one as a detail, before the rest
    data = load_body(WebhookWriteSchema(), partial=partial)
    errors = {}
    if "preset" in data:
        errors["preset"] = [PRESET_MESSAGE]
    for name in NOT_BLANK_ON_UPDATE:
        if partial and isinstance(data.get(name), str) and not data[name].strip():
            errors[name] = [BLANK]
    if errors:
        raise bad_request(errors)
    settings: dict = {}
    for name in ("name", "is_webhook_enabled", "username", "password", "authorization_header", "forward_all",
                 "http_method", "trigger_type", *TEMPLATE_FIELDS):  # fmt: skip
        if name in data:
            settings[name] = data[name]
    for name in TEMPLATE_FIELDS:  # a blank template is no template (OnCall's validate_*)
        if name in settings and not (settings[name] or "").strip():
            settings[name] = None
    if "forward_whole_payload" in data and "forward_all" not in data:
        settings["forward_all"] = data["forward_whole_payload"]
    if "team" in data:
        settings["team_id"] = _team_uuid(data["team"])
    if "integration_filter" in data:
        settings["integration_filter"] = _integration_uuids(data["integration_filter"])
    return settings


def _keep_masked_secrets(settings: dict, creating: bool) -> None:
    """The mask sent back keeps the secret (on create there is none to keep)."""
    for name in ("password", "authorization_header"):
        if settings.get(name) == MASK:
            if creating:
                settings[name] = None
            else:
                del settings[name]


@api.get("/webhooks/", strict_slashes=False)
def list_webhooks():
    number, size = page_params(WEBHOOKS_PAGE_SIZE)
    page = webhooks_page(runtime().db, request.args.get("name"), request.args.get("team_id"), number, size)
    return jsonify(paginated(page, page.rows))


@api.get("/webhooks/<webhook_id>/", strict_slashes=False)
def get_webhook(webhook_id: str):
    return jsonify(shown(found(webhook_by_id, webhook_id)))


@api.post("/webhooks/", strict_slashes=False)
@requires("admin")
def create_webhook():
    settings = _settings(partial=False)
    _keep_masked_secrets(settings, creating=True)
    rt = runtime()
    try:
        webhook_uuid, position = rt.config.create_webhook(settings, at=datetime.now(UTC))
    except NameTaken:
        raise bad_request({"non_field_errors": [NAME_TAKEN]})
    rt.wait_for("config", position)
    return jsonify(shown(found(webhook_by_id, public_id(PREFIX_WEBHOOK, webhook_uuid)))), 201


@api.route("/webhooks/<webhook_id>/", methods=["PUT", "PATCH"], strict_slashes=False)
@requires("admin")
def update_webhook(webhook_id: str):
    row = found(webhook_by_id, webhook_id)
    settings = _settings(partial=True)
    _keep_masked_secrets(settings, creating=False)
    rt = runtime()
    try:
        position = rt.config.update_webhook(UUID(row["uuid"]), settings)
    except NameTaken:
        raise bad_request({"non_field_errors": [NAME_TAKEN]})
    except AggregateNotFoundError:  # deleted meanwhile
        not_found()
    rt.wait_for("config", position)
    return jsonify(shown(found(webhook_by_id, webhook_id)))


@api.delete("/webhooks/<webhook_id>/", strict_slashes=False)
@requires("admin")
def delete_webhook(webhook_id: str):
    row = found(webhook_by_id, webhook_id)
    config_change(lambda config: config.delete_webhook(UUID(row["uuid"]), at=datetime.now(UTC)))
    return Response(status=204)


@api.get("/webhooks/<webhook_id>/responses", strict_slashes=False)
def list_webhook_responses(webhook_id: str):
    row = found(webhook_by_id, webhook_id)
    number, size = page_params(WEBHOOKS_PAGE_SIZE)
    page = responses_page(runtime().db, row["id"], number, size)
    return jsonify(paginated(page, page.rows))


# --- the OpenAPI document -------------------------------------------------------------------------


def add_to_spec(spec) -> None:
    """The webhooks' paths and schemas (``web.api.openapi`` calls this)."""
    from web.api.openapi import _errors, _ok, _path_id, _query

    for name, schema in (
        ("Webhook", WebhookSchema),
        ("WebhookPage", WebhookPageSchema),
        ("WebhookWrite", WebhookWriteSchema),
        ("WebhookResponsePage", WebhookResponsePageSchema),
    ):
        spec.components.schema(name, schema=schema)
    body = {"required": True, "content": {"application/json": {"schema": "WebhookWrite"}}}
    spec.path(
        "/api/v1/webhooks/",
        operations={
            "get": {"summary": "List outgoing webhooks, oldest first: name matches exactly, team_id=null: no "
                               "team; 50 a page", "parameters": _query(("name", "team_id", "page", "perpage")),
                    "responses": _ok("WebhookPage")},
            "post": {"summary": "Create an outgoing webhook (admins; OnCall's validation texts)", "requestBody": body,
                     "responses": _ok("Webhook", "201")},
        },
    )  # fmt: skip
    spec.path(
        "/api/v1/webhooks/{id}/", parameters=_path_id("id"),
        operations={
            "get": {"summary": "Get an outgoing webhook (secrets masked)", "responses": _ok("Webhook")},
            "put": {"summary": "Update (admins; fields left out are kept, the mask keeps a secret)",
                    "requestBody": body, "responses": _ok("Webhook")},
            "patch": {"summary": "Update (admins)", "requestBody": body, "responses": _ok("Webhook")},
            "delete": {"summary": "Delete (admins; its responses stay in the log)",
                       "responses": {"204": {"description": "Deleted"}, **_errors()}},
        },
    )  # fmt: skip
    spec.path(
        "/api/v1/webhooks/{id}/responses", parameters=_path_id("id"),
        operations={"get": {"summary": "The webhook's last responses (at most 100), newest first; 50 a page",
                            "parameters": _query(("page", "perpage")),
                            "responses": _ok("WebhookResponsePage")}},
    )  # fmt: skip
