"""The read side: plain queries over the read models, used by the API and the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass

from projections.db import Database


@dataclass(frozen=True)
class Page:
    rows: list[dict]
    count: int
    number: int
    size: int

    @property
    def total_pages(self) -> int:
        return max(1, -(-self.count // self.size))


def paginate(
    db: Database,
    select: str,
    where: list[str],
    params: list,
    order: str,
    number: int,
    size: int,
    extend: str | None = None,
) -> Page:
    """Page ``number`` of ``select``'s rows filtered by ``where``, and how many rows there are.

    ``extend`` is a query over ``{rows}``, the page's rows, that adds columns by joins which
    change no row count: they cost a lookup per row on the page only, not per row filtered.
    """
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    count = int(db.query_one(f"SELECT COUNT(*) AS n FROM ({select}{clause}) AS counted", params)["n"])
    total_pages = max(1, -(-count // size))
    number = min(max(number, 1), total_pages)  # OnCall answers the last page for a page too far
    page = f"{select}{clause} ORDER BY {order} LIMIT %s OFFSET %s"
    if extend is not None:
        page = f"{extend.format(rows=f'({page})')} ORDER BY {order}"
    rows = db.query(page, [*params, size, (number - 1) * size])
    return Page(rows=rows, count=count, number=number, size=size)


# --- integrations -------------------------------------------------------------------------------

INTEGRATION_COLUMNS = (
    "SELECT i.*, h.last_heartbeat_at, h.timeout_seconds AS heartbeat_timeout_seconds,"
    " h.status AS heartbeat_status, r.escalation_chain_id AS default_route_escalation_chain_id"
    " FROM integrations i"
    " LEFT JOIN heartbeats h ON h.integration_uuid = i.uuid"
    " LEFT JOIN routes r ON r.id = i.default_route_id"
)


def _integration(row: dict | None) -> dict | None:
    if row is not None:
        row = dict(row)
        row["templates"] = json.loads(row["templates"])
    return row


def integration_by_token_digest(db: Database, digest: str) -> dict | None:
    return _integration(
        db.query_one(f"{INTEGRATION_COLUMNS} WHERE i.token_hash = %s AND i.deleted = 0", (digest,))
    )


def integration_by_id(db: Database, public_id: str) -> dict | None:
    return _integration(db.query_one(f"{INTEGRATION_COLUMNS} WHERE i.id = %s AND i.deleted = 0", (public_id,)))


def integrations_page(db: Database, name: str | None, team_id: str | None, number: int, size: int) -> Page:
    where, params = ["i.deleted = 0"], []
    if name is not None:
        where.append("i.name = %s")
        params.append(name)
    if team_id is not None:
        if team_id == "null":
            where.append("i.team_id IS NULL")
        else:
            where.append("i.team_id = %s")
            params.append(team_id)
    page = paginate(db, INTEGRATION_COLUMNS, where, params, "i.created_at, i.id", number, size)
    return Page([_integration(r) for r in page.rows], page.count, page.number, page.size)


def integration_name_taken(db: Database, name: str, team_id: str | None, except_id: str | None = None) -> bool:
    rows = db.query(
        "SELECT id, team_id FROM integrations WHERE name = %s AND deleted = 0", (name,)
    )
    return any(r["team_id"] == team_id and r["id"] != except_id for r in rows)


# --- api tokens ---------------------------------------------------------------------------------

def api_token_by_hash(db: Database, token_hash: str) -> dict | None:
    """A valid token; ``name`` and ``role`` are its user's of the moment (``user_id``, ``U...``),
    or the token's own for a token without a user. A deleted user's tokens are not valid."""
    return db.query_one(
        "SELECT t.token_hash, t.uuid, t.created_at, t.revoked, t.revoked_at, t.user_uuid, u.id AS user_id,"
        " COALESCE(u.username, t.name) AS name, COALESCE(u.role, t.role) AS role, t.name AS token_name"
        " FROM api_tokens t LEFT JOIN users u ON u.uuid = t.user_uuid"
        " WHERE t.token_hash = %s AND t.revoked = 0 AND (t.user_uuid IS NULL OR u.deleted = 0)",
        (token_hash,),
    )


def any_api_token(db: Database) -> bool:
    return db.query_one("SELECT 1 AS one FROM api_tokens LIMIT 1") is not None


# --- alert groups -------------------------------------------------------------------------------

ALERT_GROUPS = "SELECT g.* FROM alert_groups g"
# A group has at most one last alert (alerts.id is the key): the join adds columns, never rows.
WITH_LAST_ALERT = (
    "SELECT g.*, a.created_at AS last_alert_created_at, a.payload AS last_alert_payload"
    " FROM {rows} AS g LEFT JOIN alerts a ON a.id = g.last_alert_id"
)
ALERT_GROUP_ORDER = "g.started_at DESC, g.position DESC"


def alert_groups_page(db: Database, filters: dict, number: int, size: int) -> Page:
    where, params = [], []
    for column in ("id", "integration_id", "route_id", "state"):
        if filters.get(column) is not None:
            where.append(f"g.{column} = %s")
            params.append(filters[column])
    if filters.get("started_after") is not None:
        where.append("g.started_at >= %s")
        params.append(filters["started_after"])
    if filters.get("started_before") is not None:
        where.append("g.started_at <= %s")
        params.append(filters["started_before"])
    # Counted and sorted over alert_groups alone; only the page's rows fetch their last alert.
    return paginate(db, ALERT_GROUPS, where, params, ALERT_GROUP_ORDER, number, size, extend=WITH_LAST_ALERT)


def alert_group(db: Database, public_id: str) -> dict | None:
    return db.query_one(f"{WITH_LAST_ALERT.format(rows='alert_groups')} WHERE g.id = %s", (public_id,))


def first_alert_payload(db: Database, group_public_id: str) -> str | None:
    """The payload text of the group's first alert, None before the read models show one."""
    row = db.query_one(
        "SELECT payload FROM alerts WHERE alert_group_id = %s ORDER BY position LIMIT 1", (group_public_id,)
    )
    return row["payload"] if row else None


def alerts_page(db: Database, filters: dict, number: int, size: int) -> Page:
    where, params = [], []
    for column in ("id", "alert_group_id"):
        if filters.get(column) is not None:
            where.append(f"{column} = %s")
            params.append(filters[column])
    if filters.get("search"):
        where.append("LOWER(payload) LIKE %s")
        params.append(f"%{filters['search'].lower()}%")
    return paginate(db, "SELECT * FROM alerts", where, params, "position DESC", number, size)


def timeline(db: Database, alert_group_id: str) -> list[dict]:
    return db.query(
        "SELECT * FROM timeline WHERE alert_group_id = %s ORDER BY position, seq", (alert_group_id,)
    )
