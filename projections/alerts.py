"""Alerts with their raw payloads, for ``/api/v1/alerts/``."""

from __future__ import annotations

from collections.abc import Sequence

from domain.alert_group import Alert
from domain.ids import PREFIX_ALERT, PREFIX_ALERT_GROUP, PREFIX_INTEGRATION, public_id
from projections.db import Cursor, iso
from projections.runner import Projection

INSERT_ALERT = (
    "INSERT INTO alerts (id, uuid, alert_group_id, integration_id, created_at, is_resolve_signal,"
    " payload, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


class AlertsView(Projection):
    name = "alerts"
    upstream = "alerting"
    tables = ("alerts",)
    _event_types = (Alert.Received,)

    def apply(self, event: object, cur: Cursor, position: int) -> None:
        self.apply_batch([(position, event)], cur)

    def apply_batch(self, events: Sequence[tuple[int, Alert.Received]], cur: Cursor) -> None:
        # Append-only: one statement for the whole batch.
        cur.executemany(
            INSERT_ALERT,
            [
                (
                    public_id(PREFIX_ALERT, e.originator_id),
                    str(e.originator_id),
                    public_id(PREFIX_ALERT_GROUP, e.alert_group_id),
                    public_id(PREFIX_INTEGRATION, e.integration_id),
                    iso(e.received_at),
                    int(e.is_resolve_signal),
                    e.payload_json,
                    position,
                )
                for position, e in events
            ],
        )
