"""A batched, exactly-once projection runner built from the event store's parts.

Each batch reads up to ``batch_size`` notifications from the upstream application, applies them
to every projection in the group and moves each projection's tracking row, all in one read-model
transaction. Tracking rows are locked (PostgreSQL) or the database is (SQLite), so two runners
of the same projections, for example the server and a ``tocsin replay``, cannot apply an event
twice. The library's ``ProjectionRunner`` commits per event and has no SQLite support, hence
this one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from functools import singledispatchmethod

from eventsourcing.application import Application

from adapters.waker import Waker, follow
from projections.db import Cursor, Database
from projections.follower_status import FollowerStatus

log = logging.getLogger(__name__)


class Projection:
    """A read model fed by one upstream application's events.

    A view dispatches on event types with one ``singledispatchmethod`` (``apply``, or a row
    builder its ``apply_batch`` uses); its registered types are the events the view shows.
    Views that write many rows per batch override ``apply_batch`` to send them in a few
    statements instead of one per event.
    """

    name: str
    upstream: str
    tables: tuple[str, ...] = ()
    _event_types: tuple[type, ...] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for attribute in list(cls.__dict__.values()):
            if isinstance(attribute, singledispatchmethod):
                # The runner hands a view only the events it shows.
                cls._event_types = tuple(t for t in attribute.dispatcher.registry if t is not object)
        if "name" in cls.__dict__:
            require_event_types(cls)

    def apply(self, event: object, cur: Cursor, position: int) -> None:
        raise NotImplementedError

    def clear(self, cur: Cursor) -> None:
        """Delete this view's rows before a rebuild applies every event again (default: its
        tables; a view sharing a table with another deletes only its own rows)."""
        for table in self.tables:
            cur.execute(f"DELETE FROM {table}")

    def shows(self, event: object) -> bool:
        return isinstance(event, self._event_types)

    def apply_batch(self, events: Sequence[tuple[int, object]], cur: Cursor) -> None:
        """Apply events in order; ``events`` holds only events this view shows."""
        for position, event in events:
            self.apply(event, cur, position)


def require_event_types(view: type[Projection]) -> None:
    """Refuse a view that shows no event type: its position would advance while it got nothing.

    That is what a plain ``apply()`` without ``singledispatchmethod`` registrations would do.
    """
    if not view._event_types:
        raise TypeError(
            f"view {view.__name__} handles no event type: make its apply (or its row builder) a "
            "functools.singledispatchmethod and register the events it shows, or set _event_types"
        )


class ProjectionRunner:
    def __init__(
        self,
        db: Database,
        app: Application,
        projections: Sequence[Projection],
        batch_size: int = 500,
    ):
        assert all(p.upstream == app.name for p in projections)
        for p in projections:
            require_event_types(type(p))
        self.db = db
        self.app = app
        self.projections = list(projections)
        self.batch_size = batch_size
        self.waker = Waker()
        self._initialised = False
        self._positions: dict[str, int] | None = None

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.projections]

    def _ensure_tracking_rows(self) -> None:
        if self._initialised:
            return
        with self.db.transaction() as cur:
            for p in self.projections:
                cur.execute(
                    "INSERT INTO projection_tracking (projection, upstream, position) VALUES (%s, %s, 0) "
                    "ON CONFLICT (projection, upstream) DO NOTHING",
                    (p.name, p.upstream),
                )
        self._initialised = True

    def positions(self, cur: Cursor | None = None, lock: bool = False) -> dict[str, int]:
        sql = "SELECT projection, position FROM projection_tracking WHERE upstream = %s"
        if lock and self.db.dialect == "postgres":
            sql += " FOR UPDATE"
        params = (self.app.name,)
        rows = cur.execute(sql, params).fetchall() if cur else self.db.query(sql, params)
        known = {r["projection"]: int(r["position"]) for r in rows}
        return {p.name: known.get(p.name, 0) for p in self.projections}

    def run_batch(self) -> int:
        """Apply the next batch; returns how many notifications it read (0: caught up)."""
        count = self._run_batch()
        if count is None:  # the views were rewound meanwhile (a rebuild): start from there
            count = self._run_batch() or 0
        return count

    def _run_batch(self) -> int | None:
        self._ensure_tracking_rows()
        # Where the last batch left the views; read under the lock below, so another runner
        # having moved on meanwhile only means some events are read again and skipped.
        if self._positions is None:
            self._positions = self.positions()
        start = min(self._positions.values())
        notifications = self.app.recorder.select_notifications(
            start, self.batch_size, inclusive_of_start=False
        )
        if not notifications:
            self._positions = None  # caught up: read the positions afresh next time
            return 0
        events = [(n.id, self.app.mapper.to_domain_event(n)) for n in notifications]
        last = notifications[-1].id
        self._positions = None  # until this batch commits
        with self.db.transaction() as cur:
            # Read again under the lock: another runner may have moved on meanwhile.
            positions = self.positions(cur, lock=True)
            if min(positions.values()) < start:
                return None  # nothing written; the cache is reset
            for p in self.projections:
                done = positions[p.name]
                todo = [(position, event) for position, event in events if position > done and p.shows(event)]
                if todo:
                    p.apply_batch(todo, cur)
            behind = [p.name for p in self.projections if last > positions[p.name]]
            if behind:
                marks = ", ".join(["%s"] * len(behind))
                cur.execute(
                    f"UPDATE projection_tracking SET position = %s WHERE upstream = %s AND projection IN ({marks})",
                    (last, self.app.name, *behind),
                )
        self._positions = {name: max(position, last) for name, position in positions.items()}
        return len(notifications)

    def rebuild(self, cur: Cursor) -> int:
        """Empty the views and apply every event again inside the caller's transaction ``cur``.

        Until that transaction commits, readers keep seeing the old rows (PostgreSQL MVCC, SQLite
        WAL), and a failure rolls back to them: the views are never seen empty or half-built.
        Returns how many notifications were applied.
        """
        for p in self.projections:
            cur.execute(
                "INSERT INTO projection_tracking (projection, upstream, position) VALUES (%s, %s, 0) "
                "ON CONFLICT (projection, upstream) DO NOTHING",
                (p.name, p.upstream),
            )
        # Lock the tracking rows before deleting: a live batch of these views commits first, so
        # the delete sees its rows; later batches wait for the switch-over.
        self.positions(cur, lock=True)
        for p in self.projections:
            p.clear(cur)
        total, last = 0, 0
        while notifications := self.app.recorder.select_notifications(
            last, self.batch_size, inclusive_of_start=False
        ):
            events = [(n.id, self.app.mapper.to_domain_event(n)) for n in notifications]
            for p in self.projections:
                todo = [(position, event) for position, event in events if p.shows(event)]
                if todo:
                    p.apply_batch(todo, cur)
            last = notifications[-1].id
            total += len(notifications)
        marks = ", ".join(["%s"] * len(self.projections))
        cur.execute(
            f"UPDATE projection_tracking SET position = %s WHERE upstream = %s AND projection IN ({marks})",
            (last, self.app.name, *self.names),
        )
        self._positions = None
        return total

    def forget_positions(self) -> None:
        """The views' positions were changed from outside (a rebuild): read them again."""
        self._positions = None

    def catch_up(self) -> int:
        total = 0
        while count := self.run_batch():
            total += count
        return total

    def run_forever(
        self, stop: threading.Event, idle_timeout: float = 1.0, status: FollowerStatus | None = None
    ) -> None:
        """Follow the upstream until ``stop`` is set (see ``adapters.waker.follow``)."""
        follow(
            lambda: self.run_batch(), stop, self.waker, name=f"projection runner {self.names}",
            batch_size=self.batch_size, status=status, idle_timeout=idle_timeout,
        )  # fmt: skip


def wait_for_position(
    db: Database, projection: str, upstream: str, position: int, timeout: float = 5.0
) -> bool:
    """Read-your-writes: wait until a projection has applied ``position`` (polls every few ms)."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        row = db.query_one(
            "SELECT position FROM projection_tracking WHERE projection = %s AND upstream = %s",
            (projection, upstream),
        )
        if row is not None and int(row["position"]) >= position:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
