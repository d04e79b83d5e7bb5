"""Deadlines: what must happen later, derived from events (time is data).

The ticker reads due rows and turns them into fenced commands (``domain.commands.deadline``
says which command a kind becomes); a row carries the fence it was set with, so a command for a
silence that has since changed is a no-op.
"""

from __future__ import annotations

from functools import singledispatchmethod

from domain.alert_group import AlertGroup
from domain.commands import KIND_HEARTBEAT, KIND_UNSILENCE
from domain.delivery import (
    CheckDelivery,
    DeliveryAttempt,
    PersonalNotification,
    RunNotificationStep,
)
from domain.heartbeat import Heartbeat
from domain.maintenance import KIND_MAINTENANCE_END
from domain.paging import Escalation, RunEscalationStep
from projections.db import Cursor, iso
from projections.runner import Projection


class DeadlinesView(Projection):
    name = "deadlines"
    upstream = "alerting"
    tables = ("deadlines",)

    def clear(self, cur: Cursor) -> None:
        # The maintenance ends in this table are MaintenanceDeadlinesView's (config upstream).
        cur.execute("DELETE FROM deadlines WHERE kind <> %s", (KIND_MAINTENANCE_END,))

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Other events set no deadline."""

    @apply.register
    def _(self, e: AlertGroup.Silenced, cur: Cursor, position: int) -> None:
        # Silenced forever: nothing to wait for.
        _set(cur, KIND_UNSILENCE, e.originator_id, e.until, e.fence)

    @apply.register
    def _(self, e: AlertGroup.Unsilenced, cur: Cursor, position: int) -> None:
        _set(cur, KIND_UNSILENCE, e.originator_id, None, 0)

    @apply.register
    def _(self, e: Heartbeat.Pinged, cur: Cursor, position: int) -> None:
        _set(cur, KIND_HEARTBEAT, e.originator_id, e.deadline, e.fence)

    @apply.register
    def _(self, e: Heartbeat.TimeoutChanged, cur: Cursor, position: int) -> None:
        _set(cur, KIND_HEARTBEAT, e.originator_id, e.deadline, e.fence)

    @apply.register
    def _(self, e: Heartbeat.Expired, cur: Cursor, position: int) -> None:
        _set(cur, KIND_HEARTBEAT, e.originator_id, None, 0)

    @apply.register
    def _(self, e: Heartbeat.Reset, cur: Cursor, position: int) -> None:
        _set(cur, KIND_HEARTBEAT, e.originator_id, None, 0)

    @apply.register
    def _(self, e: Heartbeat.Retired, cur: Cursor, position: int) -> None:
        _set(cur, KIND_HEARTBEAT, e.originator_id, None, 0)


    @apply.register
    def _(self, e: Escalation.Scheduled, cur: Cursor, position: int) -> None:
        _set(cur, RunEscalationStep.kind, e.originator_id, e.due_at, e.fence)

    @apply.register(Escalation.Started)
    @apply.register(Escalation.Paused)
    @apply.register(Escalation.Stopped)
    @apply.register(Escalation.Finished)
    def _(self, e, cur: Cursor, position: int) -> None:
        _set(cur, RunEscalationStep.kind, e.originator_id, None, 0)


    # --- a person's notification steps and the delivery attempts' checks -------------------------

    @apply.register
    def _(self, e: PersonalNotification.Scheduled, cur: Cursor, position: int) -> None:
        _set(cur, RunNotificationStep.kind, e.originator_id, e.due_at, e.fence)

    @apply.register(PersonalNotification.Stopped)
    @apply.register(PersonalNotification.Done)
    def _(self, e, cur: Cursor, position: int) -> None:
        _set(cur, RunNotificationStep.kind, e.originator_id, None, 0)

    @apply.register
    def _(self, e: DeliveryAttempt.Requested, cur: Cursor, position: int) -> None:
        _set(cur, CheckDelivery.kind, e.originator_id, e.check_at, 1)

    @apply.register(DeliveryAttempt.Redispatched)
    @apply.register(DeliveryAttempt.Started)
    def _(self, e, cur: Cursor, position: int) -> None:
        _set(cur, CheckDelivery.kind, e.originator_id, e.check_at, e.fence)

    @apply.register(DeliveryAttempt.Sent)
    @apply.register(DeliveryAttempt.Failed)
    @apply.register(DeliveryAttempt.Cancelled)
    def _(self, e, cur: Cursor, position: int) -> None:
        _set(cur, CheckDelivery.kind, e.originator_id, None, 0)


def _set(cur: Cursor, kind: str, subject, due_at, fence: int) -> None:
    """Set (or, with no due time, clear) the one deadline of this kind for this subject."""
    if due_at is None:
        cur.execute("DELETE FROM deadlines WHERE kind = %s AND subject = %s", (kind, str(subject)))
        return
    cur.execute(
        "INSERT INTO deadlines (kind, subject, due_at, fence) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (kind, subject) DO UPDATE SET due_at = excluded.due_at, fence = excluded.fence",
        (kind, str(subject), iso(due_at), fence),
    )


def due_deadlines(db, now_iso: str, limit: int = 100) -> list[dict]:
    return db.query(
        "SELECT kind, subject, due_at, fence FROM deadlines WHERE due_at <= %s ORDER BY due_at LIMIT %s",
        (now_iso, limit),
    )
