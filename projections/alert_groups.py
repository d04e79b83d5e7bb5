"""The alert group list: one row per group, as the public API shows it."""

from __future__ import annotations

from functools import singledispatchmethod

from domain.alert_group import AlertGroup, State
from domain.ids import PREFIX_ALERT, PREFIX_ALERT_GROUP, PREFIX_INTEGRATION, PREFIX_ROUTE, public_id
from projections.db import Cursor, iso
from projections.runner import Projection


def _state(acknowledged: bool, resolved: bool, silenced: bool) -> str:
    if resolved:
        return State.RESOLVED.value
    if acknowledged:
        return State.ACKNOWLEDGED.value
    if silenced:
        return State.SILENCED.value
    return State.FIRING.value


class AlertGroupsView(Projection):
    name = "alert_groups"
    upstream = "alerting"
    tables = ("alert_groups",)

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Events this view does not show (grouping slots, alerts) change nothing here."""

    @apply.register
    def _(self, e: AlertGroup.Registered, cur: Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO alert_groups (id, uuid, integration_id, route_id, distinction, title, source_link,"
            " state, started_at, template_revision, is_demo, position)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                public_id(PREFIX_ALERT_GROUP, e.originator_id),
                str(e.originator_id),
                public_id(PREFIX_INTEGRATION, e.integration_id),
                public_id(PREFIX_ROUTE, e.route_id),
                e.distinction,
                e.title,
                e.source_link,
                State.FIRING.value,
                iso(e.started_at),
                e.template_revision,
                int(e.is_demo),
                position,
            ),
        )

    @apply.register
    def _(self, e: AlertGroup.AlertAttached, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE alert_groups SET alerts_count = alerts_count + 1, last_alert_id = %s WHERE uuid = %s",
            (public_id(PREFIX_ALERT, e.alert_id), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: AlertGroup.Acknowledged, cur: Cursor, position: int) -> None:
        self._set(cur, e, acknowledged=1, acknowledged_at=iso(e.at), acknowledged_by=e.by)

    @apply.register
    def _(self, e: AlertGroup.Unacknowledged, cur: Cursor, position: int) -> None:
        self._set(cur, e, acknowledged=0, acknowledged_at=None, acknowledged_by=None)

    @apply.register
    def _(self, e: AlertGroup.Resolved, cur: Cursor, position: int) -> None:
        self._set(cur, e, resolved=1, resolved_at=iso(e.at), resolved_by=e.by)

    @apply.register
    def _(self, e: AlertGroup.Unresolved, cur: Cursor, position: int) -> None:
        self._set(
            cur, e, resolved=0, resolved_at=None, resolved_by=None,
            acknowledged=0, acknowledged_at=None, acknowledged_by=None,
        )

    @apply.register
    def _(self, e: AlertGroup.Silenced, cur: Cursor, position: int) -> None:
        self._set(cur, e, silenced=1, silenced_at=iso(e.at), silenced_until=iso(e.until))

    @apply.register
    def _(self, e: AlertGroup.Unsilenced, cur: Cursor, position: int) -> None:
        self._set(cur, e, silenced=0, silenced_at=None, silenced_until=None)

    @staticmethod
    def _set(cur: Cursor, e, **columns) -> None:
        row = cur.execute(
            "SELECT acknowledged, resolved, silenced FROM alert_groups WHERE uuid = %s",
            (str(e.originator_id),),
        ).fetchone()
        flags = {k: bool(row[k]) for k in ("acknowledged", "resolved", "silenced")}
        flags.update({k: bool(columns[k]) for k in flags if k in columns})
        columns["state"] = _state(**flags)
        assignments = ", ".join(f"{name} = %s" for name in columns)
        cur.execute(
            f"UPDATE alert_groups SET {assignments} WHERE uuid = %s",
            (*columns.values(), str(e.originator_id)),
        )
