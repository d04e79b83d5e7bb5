"""Integrations as the API lists them, and the token index the inbound endpoint looks up."""

from __future__ import annotations

import json
from functools import singledispatchmethod

from domain.configuration import Integration, route_id_for_default, token_digest
from domain.ids import PREFIX_INTEGRATION, PREFIX_ROUTE, public_id
from domain.inbox import HeartbeatPing
from projections.db import Cursor, iso
from projections.runner import Projection


class IntegrationsView(Projection):
    name = "integrations"
    upstream = "config"
    tables = ("integrations",)

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Other configuration events do not change integrations."""

    @apply.register
    def _(self, e: Integration.Created, cur: Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO integrations (id, uuid, type, name, token, token_hash, team_id, description_short, templates,"
            " template_revision, default_route_id, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                public_id(PREFIX_INTEGRATION, e.originator_id),
                str(e.originator_id),
                e.type,
                e.name,
                e.token,
                token_digest(e.token),
                e.team_id,
                e.description_short,
                json.dumps(e.templates),
                1,
                public_id(PREFIX_ROUTE, route_id_for_default(e.originator_id)),
                iso(e.created_at),
            ),
        )

    @apply.register
    def _(self, e: Integration.Updated, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE integrations SET name = %s, description_short = %s, team_id = %s WHERE uuid = %s",
            (e.name, e.description_short, e.team_id, str(e.originator_id)),
        )

    @apply.register
    def _(self, e: Integration.TemplatesChanged, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE integrations SET templates = %s, template_revision = %s WHERE uuid = %s",
            (json.dumps(e.templates), e.revision, str(e.originator_id)),
        )

    @apply.register
    def _(self, e: Integration.Deleted, cur: Cursor, position: int) -> None:
        cur.execute("UPDATE integrations SET deleted = 1 WHERE uuid = %s", (str(e.originator_id),))


class HeartbeatsView(Projection):
    """Last heartbeat ping per integration (from the inbox)."""

    name = "heartbeats"
    upstream = "inbox"
    tables = ("heartbeats",)

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Received alerts are ingest's business, not this view's."""

    @apply.register
    def _(self, e: HeartbeatPing.HeartbeatPinged, cur: Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO heartbeats (integration_uuid, last_heartbeat_at) VALUES (%s, %s)"
            " ON CONFLICT (integration_uuid) DO UPDATE SET last_heartbeat_at = excluded.last_heartbeat_at",
            (str(e.integration_id), iso(e.received_at)),
        )
