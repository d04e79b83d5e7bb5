"""Users and teams as the API lists them, and the queries over them."""

from __future__ import annotations

import json
from functools import singledispatchmethod

from domain.ids import PREFIX_TEAM, PREFIX_USER, public_id
from domain.users import Team, User, name_key
from projections.db import Cursor, Database, iso
from projections.queries import Page, paginate
from projections.runner import Projection


class UsersView(Projection):
    name = "users"
    upstream = "config"
    tables = ("users", "teams", "team_members")

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Other configuration events are other views'."""

    @apply.register
    def _(self, e: User.Created, cur: Cursor, position: int) -> None:
        user_id = public_id(PREFIX_USER, e.originator_id)
        cur.execute(
            "INSERT INTO users (id, uuid, username, username_key, email, email_key, role, timezone, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                user_id,
                str(e.originator_id),
                e.username,
                name_key(e.username),
                e.email,
                name_key(e.email) if e.email else None,
                e.role,
                e.timezone,
                iso(e.created_at),
            ),
        )
        self._set_teams(cur, user_id, e.team_ids)

    @apply.register
    def _(self, e: User.Updated, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE users SET username = %s, username_key = %s, email = %s, email_key = %s, role = %s, timezone = %s"
            " WHERE uuid = %s",
            (
                e.username,
                name_key(e.username),
                e.email,
                name_key(e.email) if e.email else None,
                e.role,
                e.timezone,
                str(e.originator_id),
            ),
        )

    @apply.register
    def _(self, e: User.TeamsChanged, cur: Cursor, position: int) -> None:
        self._set_teams(cur, public_id(PREFIX_USER, e.originator_id), e.team_ids)

    @apply.register
    def _(self, e: User.NotificationChannelsChanged, cur: Cursor, position: int) -> None:
        # Only the masked addresses: the read model never holds a channel's secret.
        shown = {slot: address["shown"] for slot, address in e.channels.items()}
        cur.execute(
            "UPDATE users SET notification_channels = %s WHERE uuid = %s", (json.dumps(shown), str(e.originator_id))
        )

    @apply.register
    def _(self, e: User.Deleted, cur: Cursor, position: int) -> None:
        user_id = public_id(PREFIX_USER, e.originator_id)
        cur.execute("UPDATE users SET deleted = 1 WHERE id = %s", (user_id,))
        cur.execute("DELETE FROM team_members WHERE user_id = %s", (user_id,))

    @apply.register
    def _(self, e: Team.Created, cur: Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO teams (id, uuid, name, name_key, email, avatar_url, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                public_id(PREFIX_TEAM, e.originator_id),
                str(e.originator_id),
                e.name,
                name_key(e.name),
                e.email,
                e.avatar_url,
                iso(e.created_at),
            ),
        )

    @apply.register
    def _(self, e: Team.Updated, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE teams SET name = %s, name_key = %s, email = %s, avatar_url = %s WHERE uuid = %s",
            (e.name, name_key(e.name), e.email, e.avatar_url, str(e.originator_id)),
        )

    @apply.register
    def _(self, e: Team.Deleted, cur: Cursor, position: int) -> None:
        team_id = public_id(PREFIX_TEAM, e.originator_id)
        cur.execute("UPDATE teams SET deleted = 1 WHERE id = %s", (team_id,))
        cur.execute("DELETE FROM team_members WHERE team_id = %s", (team_id,))

    @staticmethod
    def _set_teams(cur: Cursor, user_id: str, team_uuids) -> None:
        cur.execute("DELETE FROM team_members WHERE user_id = %s", (user_id,))
        # A team deleted meanwhile (between the API's check and this event) is left out.
        members = [(user_id, public_id(PREFIX_TEAM, team_uuid), seq) for seq, team_uuid in enumerate(team_uuids)]
        if members:
            cur.executemany(
                "INSERT INTO team_members (user_id, team_id, seq) SELECT %s, id, %s FROM teams WHERE id = %s AND deleted = 0",
                [(user_id, seq, team_id) for user_id, team_id, seq in members],
            )


# --- users --------------------------------------------------------------------------------------

USERS = "SELECT u.* FROM users u"
USERS_ORDER = "u.created_at, u.id"


def _with_teams(db: Database, rows: list[dict]) -> list[dict]:
    """``rows`` with ``teams``: each user's team ids, in the order they were given."""
    if not rows:
        return []
    marks = ", ".join(["%s"] * len(rows))
    teams: dict[str, list[str]] = {row["id"]: [] for row in rows}
    for member in db.query(
        f"SELECT user_id, team_id FROM team_members WHERE user_id IN ({marks}) ORDER BY user_id, seq",
        [row["id"] for row in rows],
    ):
        teams[member["user_id"]].append(member["team_id"])
    return [{**row, "teams": teams[row["id"]]} for row in rows]


def users_page(db: Database, filters: dict, number: int, size: int) -> Page:
    """Live users, oldest first; ``username`` and ``email`` match regardless of case, ``roles``
    is a list of roles any of which matches."""
    where, params = ["u.deleted = 0"], []
    for column in ("username", "email"):
        if filters.get(column) is not None:
            where.append(f"u.{column}_key = %s")
            params.append(name_key(filters[column]))
    if filters.get("roles"):
        where.append(f"u.role IN ({', '.join(['%s'] * len(filters['roles']))})")
        params.extend(filters["roles"])
    page = paginate(db, USERS, where, params, USERS_ORDER, number, size)
    return Page(_with_teams(db, page.rows), page.count, page.number, page.size)


def user_by_id(db: Database, user_id: str) -> dict | None:
    """A live user by public id (``U...``), with its teams."""
    row = db.query_one(f"{USERS} WHERE u.id = %s AND u.deleted = 0", (user_id,))
    return _with_teams(db, [row])[0] if row else None


def user_by_uuid(db: Database, uuid: str) -> dict | None:
    row = db.query_one(f"{USERS} WHERE u.uuid = %s AND u.deleted = 0", (uuid,))
    return _with_teams(db, [row])[0] if row else None


def user_by_username(db: Database, username: str) -> dict | None:
    """A live user whose username is ``username`` regardless of case."""
    row = db.query_one(f"{USERS} WHERE u.username_key = %s AND u.deleted = 0", (name_key(username),))
    return _with_teams(db, [row])[0] if row else None


# --- teams --------------------------------------------------------------------------------------

TEAMS = "SELECT t.* FROM teams t"


def teams_page(db: Database, name: str | None, number: int, size: int) -> Page:
    where, params = ["t.deleted = 0"], []
    if name is not None:
        where.append("t.name = %s")
        params.append(name)
    return paginate(db, TEAMS, where, params, "t.created_at, t.id", number, size)


def team_by_id(db: Database, team_id: str) -> dict | None:
    return db.query_one(f"{TEAMS} WHERE t.id = %s AND t.deleted = 0", (team_id,))


def team_by_name(db: Database, name: str) -> dict | None:
    """A live team named ``name`` regardless of case (names are unique that way)."""
    return db.query_one(f"{TEAMS} WHERE t.name_key = %s AND t.deleted = 0", (name_key(name),))


def live_teams(db: Database, team_ids: list[str]) -> dict[str, str]:
    """The live teams among ``team_ids`` (public ids), each to its UUID."""
    if not team_ids:
        return {}
    marks = ", ".join(["%s"] * len(team_ids))
    rows = db.query(f"SELECT id, uuid FROM teams WHERE deleted = 0 AND id IN ({marks})", list(team_ids))
    return {row["id"]: row["uuid"] for row in rows}
