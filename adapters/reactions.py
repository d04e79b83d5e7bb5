"""The tracked process that every reaction runs on: upstream events in, policies, downstream events out.

A ``TrackedProcess`` follows one upstream application's notification log. It reads a batch,
hands each event to the policies declared for its type (``domain.policies``), and saves what
they changed in the downstream application together with ``Tracking(name, last position)``, in
one transaction of the downstream's process recorder. A crash before that commit redoes the
batch; after it, the batch is never seen again: each upstream event is reacted to exactly once.

Why not the library's ``ProcessApplication``/``System``: its runners are in-process only (a
leader prompts followers inside its own ``save``), it commits one transaction per upstream
event, and its policies see one event at a time. We run one active copy per process kind across
processes (``adapters.singleton``), wake through PostgreSQL ``LISTEN/NOTIFY``, and ingest needs
a whole batch at once (templates rendered in one message to a render worker, grouping slots
read in one query): the same contract, built from the library's parts (``Tracking``,
``ProcessRecorder``, the notification log).

The downstream is the only writer of its tracking row, so the position last saved is the
position; a version conflict (a user action changed a group meanwhile) makes the process read
the store again and redo the batch on fresh state.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Tracking

from adapters.waker import Waker, follow
from domain.applications import AggregatesUnitOfWork, ProcessingApplication
from domain.policies import Policies

log = logging.getLogger(__name__)

CONFLICT_ATTEMPTS = 20


class KnownAggregates:
    """Aggregates as the process last saved them, so a busy process rarely reads the store.

    Safe without invalidation messages when, as for ingest, the process writes a new event to
    every aggregate it uses (or changes it only together with one it writes): if another writer
    changed one meanwhile, the save fails on the version and the batch runs again after
    ``clear()``. ``forget`` names aggregates that are written once and never read back.
    """

    def __init__(self, maxsize: int = 20_000, forget: tuple[type, ...] = ()):
        self.maxsize = maxsize
        self.forget = forget
        self._aggregates: OrderedDict[UUID, Aggregate] = OrderedDict()

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        aggregate = self._aggregates.get(aggregate_id)
        if aggregate is not None:
            self._aggregates.move_to_end(aggregate_id)
        return aggregate

    def remember(self, aggregates: Iterable[Aggregate]) -> None:
        for aggregate in aggregates:
            if not isinstance(aggregate, self.forget):
                self._aggregates[aggregate.id] = aggregate
                self._aggregates.move_to_end(aggregate.id)
        while len(self._aggregates) > self.maxsize:
            self._aggregates.popitem(last=False)

    def clear(self) -> None:
        self._aggregates.clear()


class TrackedProcess:
    """Upstream → policies → downstream, exactly once; see the module docstring.

    ``name`` keys the tracking row in the downstream's store: two processes that follow the same
    upstream into the same downstream need different names. ``context`` is handed to every
    policy (what the policies need beyond the unit of work: settings, a renderer).
    """

    def __init__(
        self,
        name: str,
        upstream: Application,
        downstream: ProcessingApplication,
        policies: Policies,
        context: Any = None,
        *,
        batch_size: int = 200,
        batch_interval: float = 0.0,
        known: KnownAggregates | None = None,
        preload: Callable[[Iterable[UUID]], dict[UUID, Aggregate]] | None = None,
        read_declared_only: bool = False,
    ):
        if not policies:
            raise ValueError(f"process {name} has no policies")
        self.name = name
        self.upstream = upstream
        self.downstream = downstream
        self.policies = policies
        self.context = self if context is None else context
        self.batch_size = batch_size
        self.batch_interval = batch_interval  # see run_forever
        self.known = known if known is not None else KnownAggregates()
        self.preload = preload
        self.waker = Waker()
        self._topics = policies.topics()
        # Read only the declared events (the store filters by topic): for a process that reacts to
        # few of its upstream's events, as escalation to the alerting log's.
        self._read_topics = tuple(sorted(self._topics)) if read_declared_only else ()
        self._position: int | None = None  # the position saved last; None: read it
        # Notifications read per batch: after a policy ended a batch early (say, on its work
        # limit), read about that many, doubling back to batch_size.
        self._read_limit = batch_size

    def position(self) -> int:
        """How far the process has got in its upstream (what its last commit recorded)."""
        return self.downstream.recorder.max_tracking_id(self.name) or 0

    def before_batch(self) -> None:
        """Called before each batch (a subclass refreshes what its policies' context caches)."""

    def run_batch(self) -> int:
        """Process the next batch; returns how many upstream notifications it read (0: caught up)."""
        try:
            return self._run_batch()
        except BaseException:
            self.known.clear()  # aggregates may hold changes that were never saved
            self._position = None  # and the save may or may not have committed
            raise

    def _run_batch(self) -> int:
        for attempt in range(CONFLICT_ATTEMPTS):
            if self._position is None:
                self._position = self.position()
            newest = None
            if self._read_topics:
                newest = self.upstream.recorder.max_notification_id() or 0
                if newest <= self._position:
                    return 0
            notifications = self.upstream.recorder.select_notifications(
                self._position, self._read_limit, stop=newest, topics=self._read_topics, inclusive_of_start=False
            )
            if not notifications:
                if newest is None:
                    return 0
                # None of the new events is declared: move the position past them.
                self.downstream.save_processed([], Tracking(self.name, newest))
                read, self._position = newest - self._position, newest
                return read
            self.before_batch()
            mapper = self.upstream.mapper
            # Only declared events are decoded: the others just move the position on.
            events = [
                (n.id, mapper.to_domain_event(n) if n.topic in self._topics else None) for n in notifications
            ]
            uow, taken = self._react(events)
            # Read with a topic filter and not cut short: every declared event up to the newest is in.
            complete = newest is not None and taken == len(events) and len(notifications) < self._read_limit
            if taken < len(events):
                notifications = notifications[:taken]
                self._read_limit = taken + 1
            else:
                self._read_limit = min(self._read_limit * 2, self.batch_size)
            last = newest if complete else notifications[-1].id
            try:
                self.downstream.save_processed(uow.changed(), Tracking(self.name, last))
            except IntegrityError:
                # Another writer changed an aggregate meanwhile (or another copy ran): redo the
                # batch on fresh state.
                log.debug("%s batch conflicted (attempt %d); retrying", self.name, attempt + 1)
                self.known.clear()
                self._position = None
                continue
            self._position = last
            self.known.remember(uow.all())
            return len(notifications)
        raise RuntimeError(f"{self.name} batch kept conflicting; giving up for now")

    def _react(self, events: list[tuple[int, object | None]]) -> tuple[AggregatesUnitOfWork, int]:
        """Run every policy on the batch; returns what they changed and how many of ``events``
        the batch keeps.

        A batch policy may keep only a prefix (at least its first event). Policies run in
        declaration order, so one that cuts after another already ran means running them all
        again, on fresh aggregates, on the shorter batch.
        """
        taken = len(events)
        while True:
            uow = AggregatesUnitOfWork(self.downstream, self.known, self.preload)
            ran_before_cut = False
            cut = None
            for registered in self.policies.registered:
                mine = [event for _, event in events[:taken] if event is not None and registered.reacts_to(event)]
                if not mine:
                    continue
                if registered.batch:
                    took = registered.function(uow, mine, self.context)
                    if took is not None and took < len(mine):
                        cut = _index_of(events, mine[took])  # just before the first one not taken
                        if cut == 0:
                            raise ValueError(f"{registered.function.__name__} took none of its events")
                        break
                else:
                    for event in mine:
                        registered.function(uow, event, self.context)
                ran_before_cut = True
            if cut is None:
                return uow, taken
            taken = cut
            if not ran_before_cut:
                return uow, taken  # the policy that cut ran first: what it did is the prefix's
            self.known.clear()  # the policies changed cached aggregates for events now left out

    def catch_up(self) -> int:
        total = 0
        while count := self.run_batch():
            total += count
        return total

    def run_forever(self, stop: threading.Event, idle_timeout: float = 1.0, status=None) -> None:
        """Follow the upstream until ``stop`` (see ``adapters.waker.follow``)."""
        follow(
            lambda: self.run_batch(), stop, self.waker, name=self.name, batch_size=self.batch_size, status=status,
            idle_timeout=idle_timeout, batch_interval=self.batch_interval,
        )  # fmt: skip


def _index_of(events: list[tuple[int, object | None]], event: object) -> int:
    for index, (_, candidate) in enumerate(events):
        if candidate is event:
            return index
    raise ValueError("event not in batch")
