"""Routes as the API lists them: each integration's routes in the order they are tried, the
default route last."""

from __future__ import annotations

from functools import singledispatchmethod

from domain.configuration import Integration, route_id_for_default
from domain.escalation import PREFIX_ESCALATION_CHAIN, EscalationChain
from domain.ids import PREFIX_INTEGRATION, PREFIX_ROUTE, public_id
from projections.db import Cursor, Database, iso
from projections.queries import Page, paginate
from projections.runner import Projection

ROUTES_PAGE_SIZE = 25  # OnCall's for routes


def _chain(chain_uuid) -> str | None:
    return public_id(PREFIX_ESCALATION_CHAIN, chain_uuid) if chain_uuid is not None else None


# A route shows a chain only while it is live: a route given a chain while the chain was being
# deleted takes none. Needs the chains view to run first in the same batch (tocsin.runtime).
_LIVE_CHAIN = "(SELECT id FROM escalation_chains WHERE id = %s AND deleted = 0)"


class RoutesView(Projection):
    name = "routes"
    upstream = "config"
    tables = ("routes",)

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Other configuration events do not change routes."""

    @apply.register
    def _(self, e: Integration.Created, cur: Cursor, position: int) -> None:
        default_id = route_id_for_default(e.originator_id)
        cur.execute(
            "INSERT INTO routes (id, uuid, integration_id, integration_created_at, escalation_chain_id, routing_type,"
            " routing_regex, position, is_default) VALUES (%s, %s, %s, %s, NULL, NULL, NULL, 0, 1)",
            (
                public_id(PREFIX_ROUTE, default_id),
                str(default_id),
                public_id(PREFIX_INTEGRATION, e.originator_id),
                iso(e.created_at),
            ),
        )

    @apply.register
    def _(self, e: Integration.RouteAdded, cur: Cursor, position: int) -> None:
        integration_id = public_id(PREFIX_INTEGRATION, e.originator_id)
        cur.execute(
            "UPDATE routes SET position = position + 1 WHERE integration_id = %s AND position >= %s",
            (integration_id, e.position),
        )
        cur.execute(
            "INSERT INTO routes (id, uuid, integration_id, integration_created_at, escalation_chain_id, routing_type,"
            " routing_regex, position, is_default)"
            f" SELECT %s, %s, integration_id, integration_created_at, {_LIVE_CHAIN}, %s, %s, %s, 0 FROM routes"
            " WHERE integration_id = %s AND is_default = 1",
            (
                public_id(PREFIX_ROUTE, e.route_id),
                str(e.route_id),
                _chain(e.escalation_chain_id),
                e.routing_type,
                e.routing_regex,
                e.position,
                integration_id,
            ),
        )

    @apply.register
    def _(self, e: Integration.RouteChanged, cur: Cursor, position: int) -> None:
        cur.execute(
            f"UPDATE routes SET escalation_chain_id = {_LIVE_CHAIN}, routing_type = %s, routing_regex = %s WHERE uuid = %s",
            (_chain(e.escalation_chain_id), e.routing_type, e.routing_regex, str(e.route_id)),
        )

    @apply.register
    def _(self, e: Integration.RouteRemoved, cur: Cursor, position: int) -> None:
        row = cur.execute("SELECT integration_id, position FROM routes WHERE uuid = %s", (str(e.route_id),)).fetchone()
        cur.execute("DELETE FROM routes WHERE uuid = %s", (str(e.route_id),))
        if row is not None:
            cur.execute(
                "UPDATE routes SET position = position - 1 WHERE integration_id = %s AND position > %s",
                (row["integration_id"], row["position"]),
            )

    @apply.register
    def _(self, e: Integration.RoutesReordered, cur: Cursor, position: int) -> None:
        cur.executemany(
            "UPDATE routes SET position = %s WHERE uuid = %s",
            [(index, str(route_id)) for index, route_id in enumerate(e.route_ids)],
        )

    @apply.register
    def _(self, e: Integration.Deleted, cur: Cursor, position: int) -> None:
        cur.execute("DELETE FROM routes WHERE integration_id = %s", (public_id(PREFIX_INTEGRATION, e.originator_id),))

    @apply.register
    def _(self, e: EscalationChain.Deleted, cur: Cursor, position: int) -> None:
        # The integration's own events say so too, in the same transaction.
        cur.execute(
            "UPDATE routes SET escalation_chain_id = NULL WHERE escalation_chain_id = %s",
            (_chain(e.originator_id),),
        )


ROUTES = "SELECT r.* FROM routes r"
ROUTES_ORDER = "r.integration_created_at, r.integration_id, r.is_default, r.position"


def routes_page(db: Database, filters: dict, number: int, size: int) -> Page:
    """Routes of live integrations, each integration's in the order they are tried;
    ``integration_id`` and ``routing_regex`` match exactly."""
    where, params = [], []
    for column in ("integration_id", "routing_regex"):
        if filters.get(column) is not None:
            where.append(f"r.{column} = %s")
            params.append(filters[column])
    return paginate(db, ROUTES, where, params, ROUTES_ORDER, number, size)


def route_by_id(db: Database, route_id: str) -> dict | None:
    return db.query_one(f"{ROUTES} WHERE r.id = %s", (route_id,))


def integrations_using_chain(db: Database, chain_id: str) -> list[str]:
    """Public ids of the integrations with a route that takes the escalation chain."""
    rows = db.query("SELECT DISTINCT integration_id FROM routes WHERE escalation_chain_id = %s", (chain_id,))
    return [row["integration_id"] for row in rows]
