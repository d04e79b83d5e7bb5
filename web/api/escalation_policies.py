"""``/api/v1/escalation_policies/``: the steps of escalation chains, in OnCall's shapes and with
its validation (admins write). A policy shows its type's parameters only; changing the type
drops the old type's parameters.

People, teams, schedules and outgoing webhooks (``action_to_trigger``, by its id) a step names
must exist when it is saved.
"""

from __future__ import annotations

import re
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from flask import Response, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from domain.escalation import (
    IMPORTANT_STEPS,
    MAX_PERSONS,
    MAX_WAIT_SECONDS,
    MIN_WAIT_SECONDS,
    PREFIX_ESCALATION_POLICY,
    SLACK_STEPS,
    STEP_PARAMETERS,
)
from domain.ids import public_id
from projections.escalation_chains import chain_by_id, policies_page, policy_by_id
from projections.schedules import schedule_by_id
from projections.users import team_by_id, user_by_id
from projections.webhooks import webhook_by_id
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
from web.api.routes import MAX_ID_LENGTH, REQUIRED, WholeNumber
from web.api.schemas import PageSchema, Text

MAX_COUNT = 2**31 - 1  # OnCall keeps these counts in a PositiveIntegerField
INVALID_TIME = "Invalid time format, should be '00:00:00Z'"  # OnCall's texts
INVALID_TYPE = "Invalid escalation step type"
_UTC_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\dZ")
_WEBHOOK_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def between(low: int, high: int):
    def check(value: int) -> None:
        if value < low:
            raise ValidationError(f"Ensure this value is greater than or equal to {low}.")
        if value > high:
            raise ValidationError(f"Ensure this value is less than or equal to {high}.")

    return check


def webhook_id(value: str) -> None:
    if not _WEBHOOK_ID.fullmatch(value):
        raise ValidationError("Enter a valid webhook id.")


_id = validate.Length(max=MAX_ID_LENGTH)
_persons = fields.List(
    Text(validate=_id), validate=validate.Length(max=MAX_PERSONS, error="Ensure this field has no more than {max} elements.")
)


class EscalationPolicyWriteSchema(Schema):
    """A policy as an admin sends it; parameters of other step types are ignored."""

    class Meta:
        unknown = EXCLUDE

    escalation_chain_id = Text(required=True, validate=_id, error_messages=REQUIRED)
    type = Text(required=True, validate=_id, error_messages=REQUIRED, metadata={"enum": list(STEP_PARAMETERS)})
    position = WholeNumber(metadata={"description": "0 is first; -1 (or past the end): last"})
    important = fields.Boolean()
    duration = WholeNumber(allow_none=True, validate=between(MIN_WAIT_SECONDS, MAX_WAIT_SECONDS))
    persons_to_notify = _persons
    persons_to_notify_next_each_time = fields.List(
        Text(validate=_id),
        validate=validate.Length(max=MAX_PERSONS, error="Ensure this field has no more than {max} elements."),
    )
    team_to_notify = Text(allow_none=True, validate=_id)
    notify_on_call_from_schedule = Text(allow_none=True, validate=_id)
    action_to_trigger = Text(allow_none=True, validate=webhook_id)
    notify_if_time_from = Text(allow_none=True, validate=_id)
    notify_if_time_to = Text(allow_none=True, validate=_id)
    num_alerts_in_window = WholeNumber(allow_none=True, validate=between(1, MAX_COUNT))
    num_minutes_in_window = WholeNumber(allow_none=True, validate=between(1, MAX_COUNT))


class EscalationPolicySchema(Schema):
    """OnCall's policy shape: ``id, escalation_chain_id, position, type`` and the fields of the
    type (only those are present in an answer)."""

    id = fields.String()
    escalation_chain_id = fields.String()
    position = fields.Integer()
    type = fields.String()
    important = fields.Boolean()
    duration = fields.Integer(allow_none=True)
    persons_to_notify = fields.List(fields.String())
    persons_to_notify_next_each_time = fields.List(fields.String())
    team_to_notify = fields.String(allow_none=True)
    notify_on_call_from_schedule = fields.String(allow_none=True)
    action_to_trigger = fields.String(allow_none=True)
    notify_if_time_from = fields.String(allow_none=True)
    notify_if_time_to = fields.String(allow_none=True)
    num_alerts_in_window = fields.Integer(allow_none=True)
    num_minutes_in_window = fields.Integer(allow_none=True)


class EscalationPolicyPageSchema(PageSchema):
    results = fields.List(fields.Nested(EscalationPolicySchema))


def shown(row: dict) -> dict:
    """The row without what the API does not show (the rows carry just their type's fields)."""
    return {name: value for name, value in row.items() if name not in ("uuid", "chain_uuid")}


def _policy_or_404(policy_id: str) -> dict:
    return found(policy_by_id, policy_id)


def _step_type(value: str) -> str:
    if value in SLACK_STEPS:
        raise bad_request(f"{INVALID_TYPE}: step is Slack-specific")
    if value not in STEP_PARAMETERS:
        raise bad_request(INVALID_TYPE)
    return value


def _missing(field: str, value: str):
    return bad_request({field: [f'Invalid pk "{value}" - object does not exist.']})


def _reference(field: str, value: str | None, lookup) -> UUID | None:
    if value is None:
        return None
    row = lookup(runtime().db, value)
    if row is None:
        raise _missing(field, value)
    return UUID(row["uuid"])


def _step(step_type: str, data: dict, previous: dict) -> dict:
    """The stored step: ``previous`` parameters (same type only) with those in ``data`` on top,
    references resolved to UUIDs; 400 with OnCall's texts for what is not valid."""
    step = {"type": step_type, **{name: previous[name] for name in STEP_PARAMETERS[step_type] if name in previous}}
    if step_type in IMPORTANT_STEPS:
        step["important"] = bool(data.get("important", previous.get("important", False)))
    for name in STEP_PARAMETERS[step_type]:
        if name not in data:
            continue
        value = data[name]
        if name in ("persons_to_notify", "persons_to_notify_next_each_time"):
            value = [_reference(name, user_id, user_by_id) for user_id in dict.fromkeys(value)]
        elif name == "team_to_notify":
            value = _reference(name, value, team_by_id)
        elif name == "notify_on_call_from_schedule":
            value = _reference(name, value, schedule_by_id)
        elif name == "action_to_trigger" and value is not None and webhook_by_id(runtime().db, value) is None:
            raise _missing(name, value)
        elif name in ("notify_if_time_from", "notify_if_time_to") and value is not None and not _UTC_TIME.fullmatch(value):
            raise bad_request(INVALID_TIME)
        step[name] = value
    return {name: value for name, value in step.items() if value is not None}


@api.get("/escalation_policies/", strict_slashes=False)
def list_escalation_policies():
    number, size = page_params()
    page = policies_page(runtime().db, request.args.get("escalation_chain_id"), number, size)
    return jsonify(paginated(page, page.rows))


@api.get("/escalation_policies/<policy_id>/", strict_slashes=False)
def get_escalation_policy(policy_id: str):
    return jsonify(shown(_policy_or_404(policy_id)))


@api.post("/escalation_policies/", strict_slashes=False)
@requires("admin")
def create_escalation_policy():
    data = load_body(EscalationPolicyWriteSchema(), partial=False)
    step_type = _step_type(data["type"])
    rt = runtime()
    chain = chain_by_id(rt.db, data["escalation_chain_id"])
    if chain is None:
        raise _missing("escalation_chain_id", data["escalation_chain_id"])
    try:
        policy_uuid, position = rt.config.add_escalation_policy(
            UUID(chain["uuid"]), _step(step_type, data, {}), data.get("position")
        )
    except AggregateNotFoundError:  # the chain was deleted meanwhile
        raise _missing("escalation_chain_id", data["escalation_chain_id"])
    rt.wait_for("config", position)
    return jsonify(shown(_policy_or_404(public_id(PREFIX_ESCALATION_POLICY, policy_uuid)))), 201


@api.route("/escalation_policies/<policy_id>/", methods=["PUT", "PATCH"], strict_slashes=False)
@requires("admin")
def update_escalation_policy(policy_id: str):
    row = _policy_or_404(policy_id)
    data = load_body(EscalationPolicyWriteSchema(), partial=True)
    data.pop("escalation_chain_id", None)  # a policy stays in its chain
    rt = runtime()
    chain = rt.config.repository.get(UUID(row["chain_uuid"]))
    policy_uuid = UUID(row["uuid"])
    index = chain.policy_index(policy_uuid)
    if index is None:  # deleted meanwhile
        not_found()
    current = chain.policies[index]["step"]
    step_type = _step_type(data.get("type", current["type"]))
    previous = current if step_type == current["type"] else {}
    try:
        position = rt.config.change_escalation_policy(
            chain.id, policy_uuid, step=_step(step_type, data, previous), position=data.get("position")
        )
    except AggregateNotFoundError:  # deleted meanwhile
        not_found()
    rt.wait_for("config", position)
    return jsonify(shown(_policy_or_404(policy_id)))


@api.delete("/escalation_policies/<policy_id>/", strict_slashes=False)
@requires("admin")
def delete_escalation_policy(policy_id: str):
    row = _policy_or_404(policy_id)
    config_change(lambda config: config.remove_escalation_policy(UUID(row["chain_uuid"]), UUID(row["uuid"])))
    return Response(status=204)
