"""Outgoing webhooks and their last responses, as the API lists them; what an event fires and
which responses other webhooks' templates see, for the delivery side."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from domain.ids import PREFIX_INTEGRATION, PREFIX_TEAM, public_id
from domain.users import Team
from domain.webhooks import (
    PREFIX_WEBHOOK,
    SECRETS,
    Webhook,
    WebhookResponse,
    WebhookSettings,
    shown_secret,
)
from projections.db import Cursor, Database, iso
from projections.queries import Page, paginate
from projections.runner import Projection

WEBHOOKS_PAGE_SIZE = 50  # OnCall's (FiftyPageSizePaginator)
KEPT_RESPONSES = 100  # per webhook: the API lists the last ones (the log keeps them all)

_BOOLEANS = ("is_webhook_enabled", "forward_all")


def _columns(settings: dict) -> dict[str, Any]:
    """Settings as the ``webhooks`` columns hold them (secrets as shown, never themselves)."""
    columns: dict[str, Any] = {}
    for name, value in settings.items():
        if name in SECRETS:
            columns[name] = shown_secret(value)
        elif name in _BOOLEANS:
            columns[name] = int(bool(value))
        elif name == "team_id":
            columns[name] = public_id(PREFIX_TEAM, value) if value else None
        elif name == "integration_filter":
            columns[name] = json.dumps([str(integration_id) for integration_id in value or ()])
        else:
            columns[name] = value
    return columns


class WebhooksView(Projection):
    name = "webhooks"
    upstream = "config"
    tables = ("webhooks", "webhook_responses", "webhook_last_responses")

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Other configuration events are other views'."""

    @apply.register
    def _(self, e: Webhook.Created, cur: Cursor, position: int) -> None:
        columns = {
            "id": public_id(PREFIX_WEBHOOK, e.originator_id), "uuid": str(e.originator_id),
            **_columns(e.settings), "created_at": iso(e.created_at), "position": position,
        }  # fmt: skip
        names = ", ".join(columns)
        marks = ", ".join(["%s"] * len(columns))
        cur.execute(f"INSERT INTO webhooks ({names}) VALUES ({marks})", tuple(columns.values()))

    @apply.register
    def _(self, e: Webhook.Changed, cur: Cursor, position: int) -> None:
        columns = _columns(e.changes)
        if columns:
            assignments = ", ".join(f"{name} = %s" for name in columns)
            cur.execute(f"UPDATE webhooks SET {assignments} WHERE uuid = %s", (*columns.values(), str(e.originator_id)))

    @apply.register
    def _(self, e: Webhook.Deleted, cur: Cursor, position: int) -> None:
        cur.execute("UPDATE webhooks SET deleted = 1 WHERE uuid = %s", (str(e.originator_id),))

    @apply.register
    def _(self, e: Team.Deleted, cur: Cursor, position: int) -> None:
        # OnCall's SET_NULL: a deleted team's webhooks belong to no team.
        cur.execute("UPDATE webhooks SET team_id = NULL WHERE team_id = %s", (public_id(PREFIX_TEAM, e.originator_id),))

    @apply.register
    def _(self, e: WebhookResponse.Recorded, cur: Cursor, position: int) -> None:
        record = e.record
        webhook_id = public_id(PREFIX_WEBHOOK, e.webhook_id)
        cur.execute(
            "INSERT INTO webhook_responses (uuid, webhook_id, alert_group_id, trigger_type, timestamp, url,"
            " request_trigger, request_headers, request_data, status_code, content, event_data, position)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                str(e.originator_id), webhook_id, record.get("alert_group_id"), record["trigger_type"],
                iso(record["timestamp"]), record.get("url"), record.get("request_trigger"),
                record.get("request_headers"), record.get("request_data"), record.get("status_code"),
                record.get("content"), record.get("event_data"), position,
            ),
        )  # fmt: skip
        # Only the newest KEPT_RESPONSES of this webhook stay listed.
        cur.execute(
            "DELETE FROM webhook_responses WHERE webhook_id = %s AND position <= ("
            " SELECT position FROM webhook_responses WHERE webhook_id = %s"
            " ORDER BY position DESC LIMIT 1 OFFSET %s)",
            (webhook_id, webhook_id, KEPT_RESPONSES),
        )
        if record.get("alert_group_id"):
            cur.execute(
                "INSERT INTO webhook_last_responses (alert_group_id, webhook_id, status_code, content, position)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (alert_group_id, webhook_id) DO UPDATE SET"
                " status_code = excluded.status_code, content = excluded.content, position = excluded.position",
                (record["alert_group_id"], webhook_id, record.get("status_code"), record.get("content"), position),
            )


# --- queries ------------------------------------------------------------------------------------

WEBHOOKS = "SELECT w.* FROM webhooks w"


def shown_webhook(row: dict) -> dict:
    """A webhook in OnCall's public shape (``preset``: Tocsin has no presets)."""
    integrations = json.loads(row["integration_filter"])
    return {
        "id": row["id"],
        "name": row["name"],
        "is_webhook_enabled": bool(row["is_webhook_enabled"]),
        "team": row["team_id"],
        "data": row["data"],
        "username": row["username"],
        "password": row["password"],
        "authorization_header": row["authorization_header"],
        "trigger_template": row["trigger_template"],
        "headers": row["headers"],
        "url": row["url"],
        "forward_all": bool(row["forward_all"]),
        "http_method": row["http_method"],
        "trigger_type": row["trigger_type"],
        "integration_filter": [public_id(PREFIX_INTEGRATION, UUID(i)) for i in integrations] or None,
        "preset": None,
    }


def webhooks_page(db: Database, name: str | None, team_id: str | None, number: int, size: int) -> Page:
    """Live webhooks, oldest first; ``name`` matches exactly, ``team_id`` "null" means no team."""
    where, params = ["w.deleted = 0"], []
    if name is not None:
        where.append("w.name = %s")
        params.append(name)
    if team_id is not None:
        if team_id == "null":
            where.append("w.team_id IS NULL")
        else:
            where.append("w.team_id = %s")
            params.append(team_id)
    page = paginate(db, WEBHOOKS, where, params, "w.position", number, size)
    return Page([shown_webhook(row) for row in page.rows], page.count, page.number, page.size)


def webhook_by_id(db: Database, webhook_id: str) -> dict | None:
    """A live webhook as the API shows it, with its ``uuid``."""
    row = db.query_one(f"{WEBHOOKS} WHERE w.id = %s AND w.deleted = 0", (webhook_id,))
    return None if row is None else {**shown_webhook(row), "uuid": row["uuid"]}


def shown_response(row: dict) -> dict:
    """A response in OnCall's shape (``WebhookResponseSerializer``)."""
    return {name: row[name] for name in ("timestamp", "url", "request_trigger", "request_headers", "request_data",
                                         "status_code", "content", "event_data")}  # fmt: skip


def responses_page(db: Database, webhook_id: str, number: int, size: int) -> Page:
    """A webhook's last responses, newest first."""
    page = paginate(
        db, "SELECT * FROM webhook_responses", ["webhook_id = %s"], [webhook_id], "position DESC", number, size
    )
    return Page([shown_response(row) for row in page.rows], page.count, page.number, page.size)


def webhooks_to_match(db: Database) -> list[WebhookSettings]:
    """Every live webhook, oldest first, for ``domain.webhooks.webhooks_for``. Their secrets are
    masked: ``Configuration.webhook_settings`` gives the settings to send with."""
    webhooks = []
    for row in db.query(
        "SELECT w.*, t.uuid AS team_uuid FROM webhooks w LEFT JOIN teams t ON t.id = w.team_id"
        " WHERE w.deleted = 0 ORDER BY w.position"
    ):
        webhooks.append(WebhookSettings(
            id=UUID(row["uuid"]), name=row["name"], trigger_type=row["trigger_type"],
            http_method=row["http_method"], url=row["url"], is_webhook_enabled=bool(row["is_webhook_enabled"]),
            team_id=UUID(row["team_uuid"]) if row["team_uuid"] else None, headers=row["headers"], data=row["data"],
            trigger_template=row["trigger_template"], username=row["username"], password=row["password"],
            authorization_header=row["authorization_header"], forward_all=bool(row["forward_all"]),
            integration_filter=tuple(UUID(i) for i in json.loads(row["integration_filter"])),
        ))  # fmt: skip
    return webhooks


def latest_responses(db: Database, alert_group_id: str, except_webhook_id: str | None = None) -> dict[str, Any]:
    """OnCall's ``responses`` for a webhook's context: by webhook id (``WH...``), the content of
    each other webhook's latest response for the alert group, as JSON when it parses."""
    shown: dict[str, Any] = {}
    for row in db.query(
        "SELECT webhook_id, content FROM webhook_last_responses WHERE alert_group_id = %s ORDER BY position",
        (alert_group_id,),
    ):
        if row["webhook_id"] == except_webhook_id:
            continue
        try:
            shown[row["webhook_id"]] = json.loads(row["content"]) if row["content"] else None
        except ValueError:
            shown[row["webhook_id"]] = row["content"]
    return shown
