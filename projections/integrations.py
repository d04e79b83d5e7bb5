"""Integrations as the API lists them, and the token index the inbound endpoint looks up."""

from __future__ import annotations

import json
from functools import singledispatchmethod

from domain.configuration import Integration, route_id_for_default, token_digest
from domain.ids import PREFIX_INTEGRATION, PREFIX_ROUTE, public_id
from domain.heartbeat import STATUS_ALIVE, STATUS_EXPIRED, STATUS_NOT_ARMED, Heartbeat
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

    @apply.register
    def _(self, e: Integration.MaintenanceStarted, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE integrations SET maintenance_mode = %s, maintenance_started_at = %s, maintenance_end_at = %s"
            " WHERE uuid = %s",
            (e.mode, iso(e.started_at), iso(e.end_at), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: Integration.MaintenanceStopped, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE integrations SET maintenance_mode = NULL, maintenance_started_at = NULL, maintenance_end_at = NULL"
            " WHERE uuid = %s",
            (str(e.originator_id),),
        )


class HeartbeatsView(Projection):
    """Each integration's heartbeat: timeout, last ping and status."""

    name = "heartbeats"
    upstream = "alerting"
    tables = ("heartbeats",)

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Alert group events are other views' business."""

    @apply.register
    def _(self, e: Heartbeat.Created, cur: Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO heartbeats (uuid, integration_uuid, timeout_seconds, status) VALUES (%s, %s, %s, %s)",
            (str(e.originator_id), str(e.integration_id), e.timeout_seconds, STATUS_NOT_ARMED),
        )

    @apply.register
    def _(self, e: Heartbeat.Pinged, cur: Cursor, position: int) -> None:
        self._set(cur, e, last_heartbeat_at=iso(e.at), status=STATUS_ALIVE)

    @apply.register
    def _(self, e: Heartbeat.Expired, cur: Cursor, position: int) -> None:
        self._set(cur, e, status=STATUS_EXPIRED)

    @apply.register
    def _(self, e: Heartbeat.TimeoutChanged, cur: Cursor, position: int) -> None:
        self._set(cur, e, timeout_seconds=e.timeout_seconds)

    @apply.register
    def _(self, e: Heartbeat.Reset, cur: Cursor, position: int) -> None:
        self._set(cur, e, last_heartbeat_at=None, status=STATUS_NOT_ARMED)

    @apply.register
    def _(self, e: Heartbeat.Retired, cur: Cursor, position: int) -> None:
        self._set(cur, e, last_heartbeat_at=None, status=STATUS_NOT_ARMED)

    @staticmethod
    def _set(cur: Cursor, e, **columns) -> None:
        assignments = ", ".join(f"{name} = %s" for name in columns)
        cur.execute(f"UPDATE heartbeats SET {assignments} WHERE uuid = %s", (*columns.values(), str(e.originator_id)))
