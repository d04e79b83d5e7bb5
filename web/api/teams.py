"""``/api/v1/teams/``: OnCall's teams, created, changed and deleted by admins; everyone reads."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from flask import Response, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from domain.ids import PREFIX_TEAM, public_id
from domain.users import NameTaken
from projections.users import team_by_id, teams_page
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
from web.api.schemas import PageSchema, Text
from web.api.users import email_address, printable_name

MAX_URL_LENGTH = 2000


def web_url(value: str) -> None:
    if len(value) > MAX_URL_LENGTH:
        raise ValidationError(f"Ensure this field has no more than {MAX_URL_LENGTH} characters.")
    validate.URL(schemes={"http", "https"}, error="Enter a valid URL.")(value)


class TeamWriteSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = Text(
        required=True,
        validate=[validate.Length(min=1, max=150, error="Ensure this field has no more than {max} characters."),
                  printable_name],
    )  # fmt: skip
    email = Text(allow_none=True, validate=email_address)
    avatar_url = Text(allow_none=True, validate=web_url)


class TeamSchema(Schema):
    """OnCall's team shape."""

    id = fields.String()
    grafana_id = fields.Constant(None)
    name = fields.String()
    email = fields.String(allow_none=True)
    avatar_url = fields.String(allow_none=True)


class TeamPageSchema(PageSchema):
    results = fields.List(fields.Nested(TeamSchema))


team_schema = TeamSchema()


def _team_or_404(team_id: str) -> dict:
    return found(team_by_id, team_id)


@api.get("/teams/", strict_slashes=False)
def list_teams():
    number, size = page_params()
    page = teams_page(runtime().db, request.args.get("name"), number, size)
    return jsonify(paginated(page, [team_schema.dump(row) for row in page.rows]))


@api.get("/teams/<team_id>/", strict_slashes=False)
def get_team(team_id: str):
    return jsonify(team_schema.dump(_team_or_404(team_id)))


@api.post("/teams/", strict_slashes=False)
@requires("admin")
def create_team():
    data = load_body(TeamWriteSchema(), partial=False)
    rt = runtime()
    try:
        team, position = rt.config.create_team(
            name=data["name"], email=data.get("email"), avatar_url=data.get("avatar_url"), at=datetime.now(UTC)
        )
    except NameTaken as taken:
        raise bad_request({taken.field: [str(taken)]})
    rt.wait_for("config", position)
    return jsonify(team_schema.dump(team_by_id(rt.db, public_id(PREFIX_TEAM, team.id)))), 201


@api.route("/teams/<team_id>/", methods=["PUT", "PATCH"], strict_slashes=False)
@requires("admin")
def update_team(team_id: str):
    row = _team_or_404(team_id)
    data = load_body(TeamWriteSchema(), partial=True)
    rt = runtime()
    try:
        position = rt.config.update_team(UUID(row["uuid"]), **data)
    except NameTaken as taken:
        raise bad_request({taken.field: [str(taken)]})
    except AggregateNotFoundError:  # deleted meanwhile
        not_found()
    rt.wait_for("config", position)
    return jsonify(team_schema.dump(_team_or_404(team_id)))


@api.delete("/teams/<team_id>/", strict_slashes=False)
@requires("admin")
def delete_team(team_id: str):
    """The team leaves every list and every user's ``teams``."""
    row = _team_or_404(team_id)
    config_change(lambda config: config.delete_team(UUID(row["uuid"]), at=datetime.now(UTC)))
    return Response(status=204)
