"""``POST /api/v1/escalation/``: direct paging, in OnCall's shape (editors).

Paging a team (or users, with no alert group given) sends an alert to the team's direct paging
integration (created on first use) through the inbox like any other alert, so it is routed and
escalated as the integration's routes say; the users named are then paged into the new group.
With ``alert_group_id`` the users are added as responders of that group. The answer is the
alert group, as OnCall's.
"""

from __future__ import annotations

import html
import json
import time
from datetime import UTC, datetime
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from marshmallow import EXCLUDE, Schema, fields, validate

from domain.alert_group import ActionRefused, Alert
from domain.ids import PREFIX_ALERT_GROUP, public_id, random_token
from domain.inbox import KIND_ALERT, ReceivedAlert
from domain.paging import PageResponders, Person
from projections.queries import alert_group
from projections.users import team_by_id, user_by_id
from web import runtime
from web.api import ApiError, api, bad_request, caller_name, load_body, requires
from web.api.alert_groups import get_alert_group
from web.api.routes import MAX_ID_LENGTH
from web.api.schemas import Text

MAX_USERS = 100
MAX_TEXT = 10_000
INGEST_WAIT_SECONDS = 10.0


class PagedUserSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = Text(required=True, validate=validate.Length(max=MAX_ID_LENGTH))
    important = fields.Boolean(load_default=False)


class DirectPagingSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    title = Text(allow_none=True, validate=validate.Length(max=MAX_TEXT))
    message = Text(allow_none=True, validate=validate.Length(max=MAX_TEXT))
    source_url = fields.Url(allow_none=True, validate=validate.Length(max=2048))
    team = Text(allow_none=True, validate=validate.Length(max=MAX_ID_LENGTH))
    users = fields.List(fields.Nested(PagedUserSchema), validate=validate.Length(max=MAX_USERS))
    important_team_escalation = fields.Boolean(load_default=False)
    alert_group_id = Text(allow_none=True, validate=validate.Length(max=MAX_ID_LENGTH))


def _names(names: list[str]) -> str:
    """OnCall's list: "a", "a and b", "a, b and c"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _responders(users: list[dict]) -> list[tuple[Person, bool]]:
    responders = []
    for entry in users:
        row = user_by_id(runtime().db, entry["id"])
        if row is None:
            raise bad_request(f"User {entry['id']} does not exist")
        responders.append((Person(UUID(row["uuid"]), row["username"]), entry["important"]))
    return responders


@api.post("/escalation/", strict_slashes=False)
@requires("editor")
def direct_paging():
    data = load_body(DirectPagingSchema(), partial=False)
    if data.get("alert_group_id") and any(data.get(name) for name in ("title", "message", "source_url")):
        raise bad_request("alert_group_id and title, message or source_url cannot be set at the same time")
    if data.get("users") and data.get("team"):
        raise bad_request("users and team cannot be set at the same time")
    if not data.get("users") and not data.get("team"):
        raise bad_request("No team or user(s) specified")
    responders = _responders(data.get("users") or [])
    rt = runtime()
    by = caller_name()
    if data.get("alert_group_id"):
        row = alert_group(rt.db, data["alert_group_id"])
        if row is None:
            raise bad_request(f"Alert group {data['alert_group_id']} does not exist")
        group_id = UUID(row["uuid"])
    else:
        team = None
        if data.get("team"):
            team = team_by_id(rt.db, data["team"])
            if team is None:
                raise bad_request(f"Team {data['team']} does not exist")
        group_id = _new_group(data, team, responders, by)
    try:
        position = rt.alerting.handle(PageResponders(group_id=group_id, responders=tuple(responders), by=by,
                                                     at=datetime.now(UTC)))  # fmt: skip
    except ActionRefused as refused:
        raise bad_request(str(refused))
    rt.wait_for("alerting", position)
    return get_alert_group(public_id(PREFIX_ALERT_GROUP, group_id))


def _new_group(data: dict, team: dict | None, responders: list[tuple[Person, bool]], by: str) -> UUID:
    """Send the page as an alert to the direct paging integration; the group ingest made of it."""
    rt = runtime()
    now = datetime.now(UTC)
    names = ([team["name"]] if team else []) + [person.username for person, _ in responders]
    title = data.get("title") or f"{by} is paging {_names(names)} to join escalation"
    integration_id = rt.config.direct_paging_integration(
        team["id"] if team else None, team["name"] if team else None, random_token(), now
    )
    payload = {"oncall": {
        "title": html.escape(title), "message": html.escape(data.get("message") or ""), "uid": str(uuid4()),
        "author_username": by, "permalink": data.get("source_url"), "important": data["important_team_escalation"],
    }}  # fmt: skip
    entry = ReceivedAlert(integration_id=integration_id, kind=KIND_ALERT, payload_json=json.dumps(payload), received_at=now)
    position = rt.committer.submit(entry)
    deadline = time.monotonic() + INGEST_WAIT_SECONDS
    while rt.alerting.processed_position() < position:  # ingest runs in another thread or process
        if time.monotonic() > deadline:
            raise ApiError(503, {"detail": "The page's alert was accepted but ingest has not grouped it yet, so no"
                                 " user was paged: page them into its alert group once it shows"})  # fmt: skip
        time.sleep(0.02)
    try:
        alert: Alert = rt.alerting.repository.get(Alert.create_id(entry.id, 0))
    except AggregateNotFoundError:  # ingest could not make an alert of it (not expected)
        raise ApiError(500, {"detail": "The page's alert could not be grouped"}) from None
    return alert.alert_group_id
