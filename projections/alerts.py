"""Alerts with their raw payloads, for ``/api/v1/alerts/``."""

from __future__ import annotations

from functools import singledispatchmethod

from domain.alert_group import Alert
from domain.ids import PREFIX_ALERT, PREFIX_ALERT_GROUP, PREFIX_INTEGRATION, public_id
from projections.db import Cursor, iso
from projections.runner import Projection


class AlertsView(Projection):
    name = "alerts"
    upstream = "alerting"
    tables = ("alerts",)

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Only received alerts matter here."""

    @apply.register
    def _(self, e: Alert.Received, cur: Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO alerts (id, uuid, alert_group_id, integration_id, created_at, is_resolve_signal,"
            " payload, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                public_id(PREFIX_ALERT, e.originator_id),
                str(e.originator_id),
                public_id(PREFIX_ALERT_GROUP, e.alert_group_id),
                public_id(PREFIX_INTEGRATION, e.integration_id),
                iso(e.received_at),
                int(e.is_resolve_signal),
                e.payload_json,
                position,
            ),
        )
