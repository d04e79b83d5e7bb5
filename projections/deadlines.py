"""Deadlines: what must happen later, derived from events (time is data).

The ticker reads due rows and turns them into fenced commands; a row carries the fence it was
set with, so a command for a silence that has since changed is a no-op.
"""

from __future__ import annotations

from functools import singledispatchmethod

from domain.alert_group import AlertGroup
from projections.db import Cursor, iso
from projections.runner import Projection

KIND_UNSILENCE = "unsilence"


class DeadlinesView(Projection):
    name = "deadlines"
    upstream = "alerting"
    tables = ("deadlines",)

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Other events set no deadline."""

    @apply.register
    def _(self, e: AlertGroup.Silenced, cur: Cursor, position: int) -> None:
        if e.until is None:
            self._clear(cur, e)  # silenced forever: nothing to wait for
            return
        cur.execute(
            "INSERT INTO deadlines (kind, subject, due_at, fence) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (kind, subject) DO UPDATE SET due_at = excluded.due_at, fence = excluded.fence",
            (KIND_UNSILENCE, str(e.originator_id), iso(e.until), e.fence),
        )

    @apply.register
    def _(self, e: AlertGroup.Unsilenced, cur: Cursor, position: int) -> None:
        self._clear(cur, e)

    @staticmethod
    def _clear(cur: Cursor, e) -> None:
        cur.execute(
            "DELETE FROM deadlines WHERE kind = %s AND subject = %s", (KIND_UNSILENCE, str(e.originator_id))
        )


def due_deadlines(db, now_iso: str, limit: int = 100) -> list[dict]:
    return db.query(
        "SELECT kind, subject, due_at, fence FROM deadlines WHERE due_at <= %s ORDER BY due_at LIMIT %s",
        (now_iso, limit),
    )
