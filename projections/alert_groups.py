"""The alert group list: one row per group, as the public API shows it."""

from __future__ import annotations

from functools import singledispatchmethod
from uuid import UUID

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


INSERT_GROUP = (
    "INSERT INTO alert_groups (id, uuid, integration_id, route_id, distinction, title, source_link,"
    " state, started_at, template_revision, is_demo, position, alerts_count, last_alert_id)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_COUNT, _LAST_ALERT = 12, 13  # their places in a new row
COUNT_ALERTS = "UPDATE alert_groups SET alerts_count = alerts_count + %s, last_alert_id = %s WHERE uuid = %s"


def _new_row(e: AlertGroup.Registered, position: int) -> list:
    return [
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
        0,
        None,
    ]


def _write_pending(cur: Cursor, new_rows: dict, attached: dict) -> None:
    if new_rows:
        cur.executemany(INSERT_GROUP, list(new_rows.values()))
        new_rows.clear()
    if attached:
        cur.executemany(COUNT_ALERTS, [(n, last, str(group)) for group, (n, last) in attached.items()])
        attached.clear()


class AlertGroupsView(Projection):
    name = "alert_groups"
    upstream = "alerting"
    tables = ("alert_groups",)

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Events this view does not show (grouping slots, alerts) change nothing here."""

    @apply.register
    def _(self, e: AlertGroup.Registered, cur: Cursor, position: int) -> None:
        self.apply_batch([(position, e)], cur)

    @apply.register
    def _(self, e: AlertGroup.AlertAttached, cur: Cursor, position: int) -> None:
        self.apply_batch([(position, e)], cur)

    def apply_batch(self, events, cur: Cursor) -> None:
        """New groups and attached alerts, the bulk of any batch, become two statements.

        Alerts attached to a group are counted in memory (into its new row when the group is
        new in this batch); the pending rows are written before any other change to a group, so
        that change sees them.
        """
        new_rows: dict[UUID, list] = {}
        attached: dict[UUID, list] = {}  # group -> [alerts attached, last alert id]
        for position, e in events:
            if isinstance(e, AlertGroup.AlertAttached):
                alert_id = public_id(PREFIX_ALERT, e.alert_id)
                row = new_rows.get(e.originator_id)
                if row is not None:
                    row[_COUNT] += 1
                    row[_LAST_ALERT] = alert_id
                else:
                    counted = attached.setdefault(e.originator_id, [0, None])
                    counted[0] += 1
                    counted[1] = alert_id
            elif isinstance(e, AlertGroup.Registered):
                new_rows[e.originator_id] = _new_row(e, position)
            else:
                _write_pending(cur, new_rows, attached)
                self.apply(e, cur, position)
        _write_pending(cur, new_rows, attached)

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
