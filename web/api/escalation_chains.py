"""``/api/v1/escalation_chains/``: OnCall's escalation chains (admins write). Names are unique;
deleting a chain leaves the routes that took it with no chain, as OnCall does."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from flask import Response, jsonify, request
from marshmallow import EXCLUDE, Schema, fields, validate

from domain.escalation import PREFIX_ESCALATION_CHAIN
from domain.ids import public_id
from domain.users import NameTaken
from projections.escalation_chains import chain_by_id, chains_page
from projections.queries import integration_by_id
from projections.routes import integrations_using_chain
from projections.users import team_by_id
from web import runtime
from web.api import (
    api,
    bad_request,
    found,
    load_body,
    not_found,
    page_params,
    paginated,
    requires,
)
from web.api.routes import REQUIRED
from web.api.schemas import PageSchema, Text
from web.api.users import printable_name

NAME_TAKEN = "Escalation chain with this name already exists"  # OnCall's text
MAX_NAME_LENGTH = 100  # OnCall's


class EscalationChainWriteSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = Text(
        required=True,
        error_messages=REQUIRED,
        validate=[validate.Length(max=MAX_NAME_LENGTH, error="Ensure this field has no more than {max} characters."),
                  printable_name],
    )  # fmt: skip
    team_id = Text(allow_none=True, validate=validate.Length(max=100))


class EscalationChainSchema(Schema):
    id = fields.String()
    name = fields.String()
    team_id = fields.String(allow_none=True)


class EscalationChainPageSchema(PageSchema):
    results = fields.List(fields.Nested(EscalationChainSchema))


chain_schema = EscalationChainSchema()


def _chain_or_404(chain_id: str) -> dict:
    return found(chain_by_id, chain_id)


def _team_uuid(team_id: str | None) -> UUID | None:
    if team_id is None:
        return None
    team = team_by_id(runtime().db, team_id)
    if team is None:
        raise bad_request({"team_id": [f'Invalid pk "{team_id}" - object does not exist.']})
    return UUID(team["uuid"])


@api.get("/escalation_chains/", strict_slashes=False)
def list_escalation_chains():
    number, size = page_params()
    filters = {name: request.args.get(name) for name in ("name", "team_id")}
    page = chains_page(runtime().db, filters, number, size)
    return jsonify(paginated(page, [chain_schema.dump(row) for row in page.rows]))


@api.get("/escalation_chains/<chain_id>/", strict_slashes=False)
def get_escalation_chain(chain_id: str):
    return jsonify(chain_schema.dump(_chain_or_404(chain_id)))


@api.post("/escalation_chains/", strict_slashes=False)
@requires("admin")
def create_escalation_chain():
    data = load_body(EscalationChainWriteSchema(), partial=False)
    rt = runtime()
    try:
        chain, position = rt.config.create_escalation_chain(
            name=data["name"], team_id=_team_uuid(data.get("team_id")), at=datetime.now(UTC)
        )
    except NameTaken:
        raise bad_request(NAME_TAKEN)
    rt.wait_for("config", position)
    return jsonify(chain_schema.dump(_chain_or_404(public_id(PREFIX_ESCALATION_CHAIN, chain.id)))), 201


@api.route("/escalation_chains/<chain_id>/", methods=["PUT", "PATCH"], strict_slashes=False)
@requires("admin")
def update_escalation_chain(chain_id: str):
    row = _chain_or_404(chain_id)
    data = load_body(EscalationChainWriteSchema(), partial=True)
    if "team_id" in data:
        data["team_id"] = _team_uuid(data["team_id"])
    rt = runtime()
    try:
        position = rt.config.update_escalation_chain(UUID(row["uuid"]), **data)
    except NameTaken:
        raise bad_request(NAME_TAKEN)
    except AggregateNotFoundError:  # deleted meanwhile
        not_found()
    rt.wait_for("config", position)
    return jsonify(chain_schema.dump(_chain_or_404(chain_id)))


@api.delete("/escalation_chains/<chain_id>/", strict_slashes=False)
@requires("admin")
def delete_escalation_chain(chain_id: str):
    row = _chain_or_404(chain_id)
    rt = runtime()
    used_by = [integration_by_id(rt.db, integration_id) for integration_id in integrations_using_chain(rt.db, chain_id)]
    try:
        position = rt.config.delete_escalation_chain(
            UUID(row["uuid"]), at=datetime.now(UTC), used_by=[UUID(i["uuid"]) for i in used_by if i]
        )
    except AggregateNotFoundError:
        not_found()
    rt.wait_for("config", position)
    return Response(status=204)
