"""The deadline of each maintenance's end (``domain.maintenance``), in the shared deadlines table.

The configuration's events set it: a maintenance that collects alerts sets it at its planned
end, a stop moves it to the stop. The alerting store's record of the end (what the deadline's
command did) clears it and is kept in ``maintenance_ends``, so applying the configuration's
events again afterwards (a replay, or this view running behind) does not set it again: the two
views agree whatever order their events come in.

Rebuilds: the deadlines table is shared with ``DeadlinesView``; each view's ``clear`` deletes
only its own kinds of rows.
"""

from __future__ import annotations

from functools import singledispatchmethod

from domain.configuration import MAINTENANCE_COLLECT, Integration, maintenance_id
from domain.ingest import MaintenanceCollection
from domain.maintenance import KIND_MAINTENANCE_END
from projections.db import Cursor, iso
from projections.runner import Projection


class MaintenanceDeadlinesView(Projection):
    name = "maintenance_deadlines"
    upstream = "config"
    tables = ()  # its rows live in the shared deadlines table

    def clear(self, cur: Cursor) -> None:
        cur.execute("DELETE FROM deadlines WHERE kind = %s", (KIND_MAINTENANCE_END,))

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Other configuration events set no deadline."""

    @apply.register
    def _(self, e: Integration.MaintenanceStarted, cur: Cursor, position: int) -> None:
        if e.mode != MAINTENANCE_COLLECT:
            return  # debug mode has no group to resolve: it ends by its times alone
        subject = str(maintenance_id(e.originator_id, e.number))
        cur.execute(
            "INSERT INTO deadlines (kind, subject, due_at, fence)"
            " SELECT %s, %s, %s, %s WHERE NOT EXISTS (SELECT 1 FROM maintenance_ends WHERE maintenance = %s)"
            " ON CONFLICT (kind, subject) DO UPDATE SET due_at = excluded.due_at, fence = excluded.fence",
            (KIND_MAINTENANCE_END, subject, iso(e.end_at), e.number, subject),
        )

    @apply.register
    def _(self, e: Integration.MaintenanceStopped, cur: Cursor, position: int) -> None:
        # Moves only a deadline still set: none for debug mode, none once the end was recorded.
        cur.execute(
            "UPDATE deadlines SET due_at = %s WHERE kind = %s AND subject = %s",
            (iso(e.at), KIND_MAINTENANCE_END, str(maintenance_id(e.originator_id, e.number))),
        )


class MaintenanceEndsView(Projection):
    name = "maintenance_ends"
    upstream = "alerting"
    tables = ("maintenance_ends",)

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Other alerting events are other views' business."""

    @apply.register
    def _(self, e: MaintenanceCollection.Ended, cur: Cursor, position: int) -> None:
        subject = str(e.originator_id)
        cur.execute(
            "INSERT INTO maintenance_ends (maintenance, ended_at) VALUES (%s, %s) ON CONFLICT (maintenance) DO NOTHING",
            (subject, iso(e.at)),
        )
        cur.execute("DELETE FROM deadlines WHERE kind = %s AND subject = %s", (KIND_MAINTENANCE_END, subject))
