"""Escalation chains and their policies as the API lists them."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from uuid import UUID

from domain.escalation import PREFIX_ESCALATION_CHAIN, PREFIX_ESCALATION_POLICY, EscalationChain, step_fields
from domain.ids import PREFIX_TEAM, PREFIX_USER, public_id
from domain.schedules.aggregates import PREFIX_SCHEDULE
from projections.db import Cursor, Database, iso
from projections.queries import Page, paginate
from projections.runner import Projection

# Step parameters that name other objects by UUID, and the public id prefix each one shows.
REFERENCES = {
    "persons_to_notify": PREFIX_USER,
    "persons_to_notify_next_each_time": PREFIX_USER,
    "team_to_notify": PREFIX_TEAM,
    "notify_on_call_from_schedule": PREFIX_SCHEDULE,
}


def shown_fields(step: dict) -> dict:
    """A step's fields as the API shows them: references as public ids."""
    shown = step_fields(step)
    for name, prefix in REFERENCES.items():
        value = shown.get(name)
        if isinstance(value, list):
            shown[name] = [public_id(prefix, uuid) for uuid in value]
        elif isinstance(value, UUID):
            shown[name] = public_id(prefix, value)
    return shown


class EscalationChainsView(Projection):
    name = "escalation_chains"
    upstream = "config"
    tables = ("escalation_chains", "escalation_policies")

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Other configuration events do not change escalation chains."""

    @apply.register
    def _(self, e: EscalationChain.Created, cur: Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO escalation_chains (id, uuid, name, team_id, created_at) VALUES (%s, %s, %s, %s, %s)",
            (
                public_id(PREFIX_ESCALATION_CHAIN, e.originator_id),
                str(e.originator_id),
                e.name,
                public_id(PREFIX_TEAM, e.team_id) if e.team_id else None,
                iso(e.created_at),
            ),
        )

    @apply.register
    def _(self, e: EscalationChain.Updated, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE escalation_chains SET name = %s, team_id = %s WHERE uuid = %s",
            (e.name, public_id(PREFIX_TEAM, e.team_id) if e.team_id else None, str(e.originator_id)),
        )

    @apply.register
    def _(self, e: EscalationChain.Deleted, cur: Cursor, position: int) -> None:
        chain_id = public_id(PREFIX_ESCALATION_CHAIN, e.originator_id)
        cur.execute("UPDATE escalation_chains SET deleted = 1 WHERE id = %s", (chain_id,))
        cur.execute("DELETE FROM escalation_policies WHERE escalation_chain_id = %s", (chain_id,))

    @apply.register
    def _(self, e: EscalationChain.PolicyAdded, cur: Cursor, position: int) -> None:
        chain_id = public_id(PREFIX_ESCALATION_CHAIN, e.originator_id)
        cur.execute(
            "UPDATE escalation_policies SET position = position + 1 WHERE escalation_chain_id = %s AND position >= %s",
            (chain_id, e.position),
        )
        cur.execute(
            "INSERT INTO escalation_policies (id, uuid, escalation_chain_id, position, type, fields)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                public_id(PREFIX_ESCALATION_POLICY, e.policy_id),
                str(e.policy_id),
                chain_id,
                e.position,
                e.step["type"],
                json.dumps(shown_fields(e.step)),
            ),
        )

    @apply.register
    def _(self, e: EscalationChain.PolicyChanged, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE escalation_policies SET type = %s, fields = %s WHERE uuid = %s",
            (e.step["type"], json.dumps(shown_fields(e.step)), str(e.policy_id)),
        )

    @apply.register
    def _(self, e: EscalationChain.PolicyMoved, cur: Cursor, position: int) -> None:
        self._take_out(cur, e.policy_id)
        chain_id = public_id(PREFIX_ESCALATION_CHAIN, e.originator_id)
        cur.execute(
            "UPDATE escalation_policies SET position = position + 1 WHERE escalation_chain_id = %s AND position >= %s",
            (chain_id, e.position),
        )
        cur.execute("UPDATE escalation_policies SET position = %s WHERE uuid = %s", (e.position, str(e.policy_id)))

    @apply.register
    def _(self, e: EscalationChain.PolicyRemoved, cur: Cursor, position: int) -> None:
        self._take_out(cur, e.policy_id)
        cur.execute("DELETE FROM escalation_policies WHERE uuid = %s", (str(e.policy_id),))

    @staticmethod
    def _take_out(cur: Cursor, policy_id: UUID) -> None:
        """Close the gap a policy leaves (its own row then sits at -1)."""
        row = cur.execute(
            "SELECT escalation_chain_id, position FROM escalation_policies WHERE uuid = %s", (str(policy_id),)
        ).fetchone()
        if row is None:
            return
        cur.execute("UPDATE escalation_policies SET position = -1 WHERE uuid = %s", (str(policy_id),))
        cur.execute(
            "UPDATE escalation_policies SET position = position - 1 WHERE escalation_chain_id = %s AND position > %s",
            (row["escalation_chain_id"], row["position"]),
        )


# --- chains -------------------------------------------------------------------------------------

CHAINS = "SELECT c.* FROM escalation_chains c"


def chains_page(db: Database, filters: dict, number: int, size: int) -> Page:
    """Live chains, oldest first; ``name`` matches exactly, ``team_id`` "null" means no team."""
    where, params = ["c.deleted = 0"], []
    if filters.get("name") is not None:
        where.append("c.name = %s")
        params.append(filters["name"])
    if filters.get("team_id") is not None:
        if filters["team_id"] == "null":
            where.append("c.team_id IS NULL")
        else:
            where.append("c.team_id = %s")
            params.append(filters["team_id"])
    return paginate(db, CHAINS, where, params, "c.created_at, c.id", number, size)


def chain_by_id(db: Database, chain_id: str) -> dict | None:
    return db.query_one(f"{CHAINS} WHERE c.id = %s AND c.deleted = 0", (chain_id,))


# --- policies -----------------------------------------------------------------------------------

POLICIES = (
    "SELECT p.*, c.created_at AS chain_created_at FROM escalation_policies p"
    " JOIN escalation_chains c ON c.id = p.escalation_chain_id"
)


def _policy(row: dict | None) -> dict | None:
    if row is None:
        return None
    return {"id": row["id"], "escalation_chain_id": row["escalation_chain_id"], "position": row["position"],
            "type": row["type"], **json.loads(row["fields"])}  # fmt: skip


def policies_page(db: Database, chain_id: str | None, number: int, size: int) -> Page:
    """Policies ordered by chain (oldest first), then position."""
    where, params = [], []
    if chain_id is not None:
        where.append("p.escalation_chain_id = %s")
        params.append(chain_id)
    page = paginate(db, POLICIES, where, params, "chain_created_at, escalation_chain_id, position", number, size)
    return Page([_policy(row) for row in page.rows], page.count, page.number, page.size)


def policy_by_id(db: Database, policy_id: str) -> dict | None:
    """A policy as the API shows it, with its ``uuid`` and its chain's (``chain_uuid``)."""
    row = db.query_one(
        "SELECT p.*, c.uuid AS chain_uuid FROM escalation_policies p"
        " JOIN escalation_chains c ON c.id = p.escalation_chain_id WHERE p.id = %s",
        (policy_id,),
    )
    return None if row is None else {**_policy(row), "uuid": row["uuid"], "chain_uuid": row["chain_uuid"]}
