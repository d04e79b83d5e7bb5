"""``/api/v1/users/``: OnCall's users, created, changed and deleted by admins; everyone reads.

Every API token belongs to a user (``current`` is the caller's), whose role it acts with.
``/users/{id}/schedule_export`` manages the user's iCal export token (the user or an admin); the
calendar it opens is served by the schedules' export (web/api/schedules.py).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from flask import Response, g, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from domain.configuration import ROLES, token_digest
from domain.ids import PREFIX_USER, public_id
from domain.schedules.commands import ExportTokenExists
from domain.users import DEFAULT_TIMEZONE, NameTaken, is_timezone
from projections.schedules import user_export_token
from projections.users import live_teams, user_by_id, users_page
from web import runtime
from web.api import (
    ApiError,
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

USERS_PAGE_SIZE = 100  # OnCall's for users (50 elsewhere)
MAX_TEAMS = 100  # per user: plenty for people, and a bound on what one request makes us check
# OnCall's legacy role numbers, which its ``roles`` filter takes.
LEGACY_ROLES = {"0": "admin", "1": "editor", "2": "viewer"}


def printable_name(value: str) -> None:
    """A name is shown in timelines and on the command line: no control characters, no blank."""
    if not value.strip():
        raise ValidationError("This field may not be blank.")
    if not value.isprintable():
        raise ValidationError("Control characters are not allowed.")


_email = validate.Email(error="Enter a valid email address.")


def email_address(value: str) -> None:
    """Django's rules: at most 254 characters (checked first, so a huge text is not parsed)."""
    if len(value) > 254:
        raise ValidationError("Ensure this field has no more than 254 characters.")
    _email(value)


def known_role(value: str) -> None:
    if value not in ROLES:
        raise ValidationError(f'"{value[:100]}" is not a valid choice.')  # quoted short: never echo a huge text


def known_timezone(value: str) -> None:
    if not is_timezone(value):
        raise ValidationError(f'"{value[:100]}" is not a valid time zone.')


class UserWriteSchema(Schema):
    """A user as an admin sends it; on update (PUT or PATCH, as in OnCall) every field is optional."""

    class Meta:
        unknown = EXCLUDE

    username = Text(
        required=True,
        validate=[validate.Length(min=1, max=150, error="Ensure this field has no more than {max} characters."),
                  printable_name],
    )  # fmt: skip
    email = Text(allow_none=True, validate=email_address)
    role = Text(validate=known_role, metadata={"enum": list(ROLES)})
    timezone = Text(validate=known_timezone)
    teams = fields.List(
        Text(validate=validate.Length(max=100)),
        validate=validate.Length(max=MAX_TEAMS, error="Ensure this field has no more than {max} elements."),
    )


class UserSchema(Schema):
    """OnCall's user shape (Slack and phone verification are not part of Tocsin)."""

    id = fields.String()
    grafana_id = fields.Constant(None)
    email = fields.String(allow_none=True)
    slack = fields.Constant(None)
    username = fields.String()
    role = fields.String(validate=validate.OneOf(ROLES))
    is_phone_number_verified = fields.Constant(False)
    timezone = fields.String()
    teams = fields.List(fields.String())


class ShortUserSchema(Schema):
    """``?short=true``: OnCall's compact form, without slack, timezone and teams."""

    id = fields.String()
    grafana_id = fields.Constant(None)
    email = fields.String(allow_none=True)
    username = fields.String()
    role = fields.String(validate=validate.OneOf(ROLES))
    is_phone_number_verified = fields.Constant(False)


class UserPageSchema(PageSchema):
    results = fields.List(fields.Nested(UserSchema))


user_schema = UserSchema()
short_user_schema = ShortUserSchema()


def _team_uuids(team_ids: list[str]) -> list[UUID]:
    """The teams' UUIDs; 400 with Django REST framework's text for an id that is no live team."""
    uuids = live_teams(runtime().db, team_ids)
    missing = [team_id for team_id in dict.fromkeys(team_ids) if team_id not in uuids]
    if missing:
        raise bad_request({"teams": [f'Invalid pk "{team_id}" - object does not exist.' for team_id in missing]})
    return [UUID(uuids[team_id]) for team_id in dict.fromkeys(team_ids)]


def _user_or_404(user_id: str) -> dict:
    if user_id == "current":
        user_id = g.caller.get("user_id") or ""
    return found(user_by_id, user_id)


def _name_taken(taken: NameTaken) -> ApiError:
    return bad_request({taken.field: [str(taken)]})


@api.get("/users/", strict_slashes=False)
def list_users():
    filters = {name: request.args.get(name) for name in ("username", "email")}
    roles = []
    for value in request.args.getlist("roles"):
        role = LEGACY_ROLES.get(value, value if value in ROLES else None)
        if role is None:
            raise bad_request({"roles": [f"Select a valid choice. {value[:100]} is not one of the available choices."]})
        roles.append(role)
    filters["roles"] = roles
    number, size = page_params(USERS_PAGE_SIZE)
    page = users_page(runtime().db, filters, number, size)
    schema = short_user_schema if request.args.get("short") == "true" else user_schema
    return jsonify(paginated(page, [schema.dump(row) for row in page.rows]))


@api.get("/users/<user_id>/", strict_slashes=False)
def get_user(user_id: str):
    return jsonify(user_schema.dump(_user_or_404(user_id)))


@api.post("/users/", strict_slashes=False)
@requires("admin")
def create_user():
    data = load_body(UserWriteSchema(), partial=False)
    rt = runtime()
    try:
        user, position = rt.config.create_user(
            username=data["username"],
            email=data.get("email"),
            role=data.get("role", "viewer"),
            timezone=data.get("timezone", DEFAULT_TIMEZONE),
            team_ids=_team_uuids(data.get("teams", [])),
            at=datetime.now(UTC),
        )
    except NameTaken as taken:
        raise _name_taken(taken)
    rt.wait_for("config", position)
    return jsonify(user_schema.dump(user_by_id(rt.db, public_id(PREFIX_USER, user.id)))), 201


@api.route("/users/<user_id>/", methods=["PUT", "PATCH"], strict_slashes=False)
@requires("admin")
def update_user(user_id: str):
    row = _user_or_404(user_id)
    data = load_body(UserWriteSchema(), partial=True)
    rt = runtime()
    team_ids = _team_uuids(data.pop("teams")) if "teams" in data else None
    try:
        position = rt.config.update_user(UUID(row["uuid"]), team_ids=team_ids, **data)
    except NameTaken as taken:
        raise _name_taken(taken)
    except AggregateNotFoundError:  # deleted meanwhile
        not_found()
    rt.wait_for("config", position)
    return jsonify(user_schema.dump(_user_or_404(row["id"])))


@api.delete("/users/<user_id>/", strict_slashes=False)
@requires("admin")
def delete_user(user_id: str):
    """The user leaves every list; its tokens stop working (within the token cache's lifetime)."""
    row = _user_or_404(user_id)
    config_change(lambda config: config.delete_user(UUID(row["uuid"]), at=datetime.now(UTC)))
    return Response(status=204)


# --- the user's iCal export token (OnCall's export_token: GET, POST, DELETE) ---------------------


def _own_or_admin(user_id: str) -> dict:
    """The user whose export token is asked for: the caller's own, or anyone's for an admin."""
    row = _user_or_404(user_id)
    if row["id"] != g.caller.get("user_id") and g.caller["role"] != "admin":
        raise ApiError(403, {"detail": "You do not have permission to perform this action."})
    return row


def export_token_status(user_id: str) -> Response:
    row = _own_or_admin(user_id)
    token = user_export_token(runtime().db, row["id"])
    if token is None:
        not_found()
    return jsonify({"created_at": token["created_at"], "revoked_at": token["revoked_at"], "active": True})


@api.post("/users/<user_id>/schedule_export", strict_slashes=False)
def create_export_token(user_id: str):
    """A new export token, shown once with the URL a calendar app subscribes to (409 while one
    is active)."""
    row = _own_or_admin(user_id)
    token = secrets.token_hex(32)
    rt = runtime()
    try:
        _, position = rt.config.issue_user_export_token(row["id"], token_digest(token),
                                                        at=datetime.now(UTC))
    except ExportTokenExists:
        raise ApiError(409, {"detail": "Schedule export token for user already exists"})
    rt.wait_for("config", position)
    export_url = f"{rt.settings.base_url}/api/v1/users/{row['id']}/schedule_export?token={token}"
    return jsonify({"token": token, "created_at": user_export_token(rt.db, row["id"])["created_at"],
                    "export_url": export_url}), 201


@api.delete("/users/<user_id>/schedule_export", strict_slashes=False)
def revoke_export_token(user_id: str):
    """The token stops opening the calendar at once (404 if there is none)."""
    row = _own_or_admin(user_id)
    config_change(lambda config: config.revoke_user_export_token(row["id"], at=datetime.now(UTC)))
    return Response(status=204)
