"""``/api/v1/personal_notification_rules/`` in OnCall's shape and texts, and
``/api/v1/users/{id}/notification_channels``: where a user is reached.

Everyone reads every user's rules (as in OnCall); a user changes their own, admins anyone's. A rule
keeps its user and its list (``user_id`` and ``important`` are read-only on update). Where OnCall
resets a wait to 5 minutes when ``type: "wait"`` is sent again without ``duration``, a wait keeps
its duration here.

Channel addresses (see ``domain.notification_rules``): ``webhook`` takes an http(s) URL, the other
slots an Apprise URL; each is checked when saved (a 400 says what is wrong with it) and never
shown in full: the user and admins see it masked (Apprise's privacy form: secrets cut to their
first and last characters; a webhook's path and query as ``****************``), anyone else only
the service's scheme. Sending back the masked form keeps the address, as OnCall does with a
webhook's password; ``null`` removes it. PUT and PATCH both change only the slots sent.
"""

from __future__ import annotations

import json
import re
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from flask import Response, g, jsonify, request
from marshmallow import EXCLUDE, Schema, fields, validate

from adapters.notify_channels import (
    InvalidAddress,
    check_apprise_url,
    check_webhook_url,
)
from domain.ids import public_id
from domain.notification_rules import (
    ADDRESS_SLOTS,
    CHANNELS,
    PREFIX_NOTIFICATION_RULE,
    RULE_TYPES,
    WAIT,
    WAIT_DURATIONS,
    RuleRefused,
    make_step,
    shown_channels,
)
from projections.notification_rules import RULES_PAGE_SIZE, rule_by_id, rules_page
from projections.users import user_by_id
from web import runtime
from web.api import (
    ApiError,
    api,
    bad_request,
    config_change,
    found,
    json_object,
    load_body,
    not_found,
    page_params,
    paginated,
)
from web.api.routes import MAX_ID_LENGTH, REQUIRED, WholeNumber
from web.api.schemas import PageSchema, Text

FORBIDDEN = {"detail": "You do not have permission to perform this action."}
MAX_POSITION = 2**31 - 1  # OnCall keeps ``order`` in a PositiveIntegerField
MAX_NAMED_ERRORS = 10  # unknown channels named in one answer
_CLOCK = re.compile(r"(\d{1,2}):([0-5]\d):([0-5]\d)")


class Duration(fields.Field):
    """OnCall's ``duration``: seconds, or "HH:MM:SS"; anything else is "Invalid duration format"."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and (clock := _CLOCK.fullmatch(value)):
            hours, minutes, seconds = (int(part) for part in clock.groups())
            return hours * 3600 + minutes * 60 + seconds
        if isinstance(value, bool) or not isinstance(value, int | float) or not -(2**53) < value < 2**53:
            raise bad_request("Invalid duration format")
        return int(value) if value == int(value) else value  # 300.5 is no choice, as in OnCall


class PersonalNotificationRuleWriteSchema(Schema):
    """A rule as its user (or an admin) sends it; on update ``user_id`` and ``important`` are ignored."""

    class Meta:
        unknown = EXCLUDE

    user_id = Text(required=True, validate=validate.Length(max=MAX_ID_LENGTH), error_messages=REQUIRED)
    type = fields.Raw(metadata={"type": "string", "enum": list(RULE_TYPES)})
    duration = Duration(metadata={"type": "integer", "enum": list(WAIT_DURATIONS),
                                  "description": "seconds (or HH:MM:SS); wait steps only"})  # fmt: skip
    position = WholeNumber(metadata={"description": "0 is first; -1 (or past the end): last"})
    manual_order = fields.Boolean(metadata={"description": "swap with the rule at position instead of moving"})
    important = fields.Boolean()


class PersonalNotificationRuleSchema(Schema):
    """OnCall's rule shape; ``duration`` only for a wait."""

    id = fields.String()
    user_id = fields.String()
    position = fields.Integer()
    type = fields.String(validate=validate.OneOf(RULE_TYPES))
    duration = fields.Integer()
    important = fields.Boolean()


class PersonalNotificationRulePageSchema(PageSchema):
    results = fields.List(fields.Nested(PersonalNotificationRuleSchema))


# Channel addresses by slot: ``webhook`` an http(s) URL, the others Apprise URLs; null removes one.
NotificationChannelsSchema = Schema.from_dict(
    {slot: fields.String(allow_none=True, metadata={"description": "an http(s) URL" if slot == "webhook"
                                                    else "an Apprise URL"}) for slot in ADDRESS_SLOTS},
    name="NotificationChannels",
)  # fmt: skip
# A slot whose masked form came back: the address stays as it is.
KEEP = object()


def shown(row: dict) -> dict:
    return {name: value for name, value in row.items() if name not in ("uuid", "user_uuid")}


def _may_change(user_id: str) -> None:
    """A user changes their own rules and addresses; admins anyone's."""
    if g.caller["role"] != "admin" and g.caller.get("user_id") != user_id:
        raise ApiError(403, FORBIDDEN)


def _user_or_400(user_id: str) -> dict:
    row = user_by_id(runtime().db, user_id)
    if row is None:
        raise bad_request("User does not exist")
    return row


def _step(data: dict, step_type: str | None, duration: int | None):
    """The step for ``step_type`` (OnCall's refusals as {"field": "text"}), the wait's
    ``duration`` checked against OnCall's choices."""
    if duration is not None and duration not in WAIT_DURATIONS:
        raise bad_request({"duration": [f'"{data["duration"]}" is not a valid choice.']})
    if not isinstance(step_type, str):
        raise bad_request({"type": "Invalid type"})
    try:
        return make_step(step_type, duration)
    except RuleRefused as refused:
        raise bad_request({refused.field: refused.text})


def _position(data: dict) -> int | None:
    position = data.get("position")
    if position is None:
        return None
    if position < -1:
        raise bad_request("Invalid value for position field")
    return min(position, MAX_POSITION)


def _important_filter() -> bool | None:
    value = request.args.get("important")
    if value is None:
        return None
    if value not in ("true", "false"):
        raise bad_request("Important is not bool")
    return value == "true"


@api.get("/personal_notification_rules/", strict_slashes=False)
def list_personal_notification_rules():
    user_id = request.args.get("user_id")
    if user_id is not None and user_by_id(runtime().db, user_id) is None:
        raise bad_request("User not found.")
    number, size = page_params(RULES_PAGE_SIZE)
    page = rules_page(runtime().db, user_id, _important_filter(), number, size)
    return jsonify(paginated(page, page.rows))


@api.get("/personal_notification_rules/<rule_id>/", strict_slashes=False)
def get_personal_notification_rule(rule_id: str):
    return jsonify(shown(found(rule_by_id, rule_id)))


@api.post("/personal_notification_rules/", strict_slashes=False)
def create_personal_notification_rule():
    data = load_body(PersonalNotificationRuleWriteSchema(), partial=False)
    user = _user_or_400(data["user_id"])
    _may_change(user["id"])
    if "type" not in data:
        raise bad_request({"type": "Type is required"})
    step = _step(data, data["type"], data.get("duration"))
    rt = runtime()
    try:
        rule_uuid, position = rt.config.add_notification_rule(
            UUID(user["uuid"]), bool(data.get("important", False)), step, _position(data)
        )
    except RuleRefused as refused:
        raise bad_request({refused.field: refused.text} if refused.field != "detail" else refused.text)
    except AggregateNotFoundError:  # the user was deleted meanwhile
        raise bad_request("User does not exist")
    rt.wait_for("config", position)
    return jsonify(shown(found(rule_by_id, public_id(PREFIX_NOTIFICATION_RULE, rule_uuid)))), 201


@api.route("/personal_notification_rules/<rule_id>/", methods=["PUT", "PATCH"], strict_slashes=False)
def update_personal_notification_rule(rule_id: str):
    row = found(rule_by_id, rule_id)
    _may_change(row["user_id"])
    data = load_body(PersonalNotificationRuleWriteSchema(), partial=True)
    step = None
    if data.get("type") is not None:
        duration = data.get("duration", row.get("duration") if data["type"] == row["type"] == WAIT else None)
        step = _step(data, data["type"], duration)
    elif "duration" in data:
        if row["type"] != WAIT:
            raise bad_request({"duration": "Duration can't be set"})
        step = _step(data, WAIT, data["duration"])
    rt = runtime()
    try:
        position = rt.config.change_notification_rule(
            UUID(row["user_uuid"]), UUID(row["uuid"]), step=step, position=_position(data),
            swap=bool(data.get("manual_order")),
        )  # fmt: skip
    except AggregateNotFoundError:  # deleted meanwhile
        not_found()
    rt.wait_for("config", position)
    return jsonify(shown(found(rule_by_id, rule_id)))


@api.delete("/personal_notification_rules/<rule_id>/", strict_slashes=False)
def delete_personal_notification_rule(rule_id: str):
    row = found(rule_by_id, rule_id)
    _may_change(row["user_id"])
    config_change(lambda config: config.remove_notification_rule(UUID(row["user_uuid"]), UUID(row["uuid"])))
    return Response(status=204)


# --- channel addresses ----------------------------------------------------------------------------


def notification_channels_seen(row: dict) -> dict[str, str]:
    """A user's addresses as the caller may see them (the read model holds only masked forms)."""
    full = g.caller["role"] == "admin" or g.caller.get("user_id") == row["id"]
    return shown_channels(json.loads(row.get("notification_channels") or "{}"), full=full)


def _user_or_404(user_id: str) -> dict:
    if user_id == "current":
        user_id = g.caller.get("user_id") or ""
    return found(user_by_id, user_id)


def _checked(slot: str, value: object, current: str | None) -> dict | None | object:
    """What to record for a slot: None to remove it, ``{"url", "shown"}`` to set it, ``KEEP``
    when its masked form came back; 400 with what is wrong otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request({slot: ["Not a valid string."]})
    if current is not None and value == current:
        return KEEP
    try:
        if CHANNELS[slot].address == "webhook":
            masked = check_webhook_url(value, runtime().settings.outgoing_policy)
        else:
            masked = check_apprise_url(value)
    except InvalidAddress as invalid:
        raise bad_request({slot: [str(invalid)]})
    return {"url": value, "shown": masked}


@api.get("/users/<user_id>/notification_channels", strict_slashes=False)
def get_notification_channels(user_id: str):
    return jsonify(notification_channels_seen(_user_or_404(user_id)))


@api.route("/users/<user_id>/notification_channels", methods=["PUT", "PATCH"], strict_slashes=False)
def change_notification_channels(user_id: str):
    row = _user_or_404(user_id)
    _may_change(row["id"])
    body = json_object()
    unknown = [slot for slot in body if slot not in ADDRESS_SLOTS][:MAX_NAMED_ERRORS]  # a bound on the answer
    if unknown:
        raise bad_request({
            slot[:100]: ["Email goes to the user's email address: change it on the user."] if slot == "email"
            else [f"Unknown channel: use one of {', '.join(ADDRESS_SLOTS)}."]
            for slot in unknown
        })  # fmt: skip
    current = json.loads(row.get("notification_channels") or "{}")
    changes = {}
    for slot, value in body.items():
        address = _checked(slot, value, current.get(slot))
        if address is not KEEP:
            changes[slot] = address
    config_change(lambda config: config.change_notification_channels(UUID(row["uuid"]), changes) if changes else None)
    return jsonify(notification_channels_seen(_user_or_404(row["id"])))


# --- the OpenAPI document -------------------------------------------------------------------------


def add_to_spec(spec) -> None:
    """The rules' and channel addresses' paths and schemas (``web.api.openapi`` calls this)."""
    for name, schema in (
        ("PersonalNotificationRule", PersonalNotificationRuleSchema),
        ("PersonalNotificationRulePage", PersonalNotificationRulePageSchema),
        ("PersonalNotificationRuleWrite", PersonalNotificationRuleWriteSchema),
        ("NotificationChannels", NotificationChannelsSchema),
    ):
        spec.components.schema(name, schema=schema)

    def ok(schema: str, status: str = "200") -> dict:
        return {status: {"description": "OK", "content": {"application/json": {"schema": schema}}}}

    path_id = [{"in": "path", "name": "id", "required": True, "schema": {"type": "string"}}]
    body = {"required": True, "content": {"application/json": {"schema": "PersonalNotificationRuleWrite"}}}
    filters = [{"in": "query", "name": name, "schema": {"type": "string"}, "required": False}
               for name in ("user_id", "important", "page", "perpage")]  # fmt: skip
    spec.path(
        "/api/v1/personal_notification_rules/",
        operations={
            "get": {"summary": "List personal notification rules: by user, default before important, then "
                               "position; user_id filters by user, important takes true or false; 50 a page",
                    "parameters": filters, "responses": ok("PersonalNotificationRulePage")},
            "post": {"summary": "Add a rule to a user's default or important list (the user or an admin)",
                     "requestBody": body, "responses": ok("PersonalNotificationRule", "201")},
        },
    )  # fmt: skip
    spec.path(
        "/api/v1/personal_notification_rules/{id}/", parameters=path_id,
        operations={
            "get": {"summary": "Get a rule", "responses": ok("PersonalNotificationRule")},
            "put": {"summary": "Change a rule's type, duration or position (the user or an admin)",
                    "requestBody": body, "responses": ok("PersonalNotificationRule")},
            "patch": {"summary": "Change a rule (the user or an admin)", "requestBody": body,
                      "responses": ok("PersonalNotificationRule")},
            "delete": {"summary": "Delete a rule (the user or an admin); later rules move up",
                       "responses": {"204": {"description": "Deleted"}}},
        },
    )  # fmt: skip
    channels = {"required": True, "content": {"application/json": {"schema": "NotificationChannels"}}}
    spec.path(
        "/api/v1/users/{id}/notification_channels", parameters=path_id,
        operations={
            "get": {"summary": "Where a user is notified: masked for the user and admins, the service only for "
                               "others (`current`: the caller)", "responses": ok("NotificationChannels")},
            "put": {"summary": "Set (checked), keep (the masked form sent back) or remove (null) addresses; other "
                               "slots are kept (the user or an admin)",
                    "requestBody": channels, "responses": ok("NotificationChannels")},
            "patch": {"summary": "As PUT", "requestBody": channels, "responses": ok("NotificationChannels")},
        },
    )  # fmt: skip
