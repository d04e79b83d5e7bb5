"""The ingest processor: follows the inbox in order and records grouping decisions.

A batch of inbox entries becomes one transaction on the alerting store, together with the
position reached in the inbox (exactly once: a crash before commit redoes the batch, a crash
after it skips the batch). One ingest process runs at a time, so the same inbox and the same
configuration always give the same groups.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Tracking

from adapters.waker import Waker
from domain.alert_group import Alert
from domain.applications import Alerting, Configuration, Inbox
from domain.configuration import Integration
from domain.heartbeat import Heartbeat
from domain.inbox import KIND_DEMO, HeartbeatPing
from domain.ingest import (
    IntegrationSettings,
    decide_entry,
    expire_heartbeat,
    ingest_heartbeat_ping,
    record_entry,
)
from domain.integrations import get_type

log = logging.getLogger(__name__)


class KnownAggregates:
    """Aggregates as ingest last saved them, so a busy ingest rarely reads the store.

    Safe without invalidation messages: ingest writes a new event to every group and heartbeat
    it uses, and a slot only changes together with a group, so if another writer (a user
    action, the ticker) changed one meanwhile, the save fails on the version and the batch runs
    again after ``clear()``.
    """

    def __init__(self, maxsize: int = 20_000):
        self.maxsize = maxsize
        self._aggregates: OrderedDict[UUID, Aggregate] = OrderedDict()

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        aggregate = self._aggregates.get(aggregate_id)
        if aggregate is not None:
            self._aggregates.move_to_end(aggregate_id)
        return aggregate

    def remember(self, aggregates) -> None:
        for aggregate in aggregates:
            if not isinstance(aggregate, Alert):  # alerts are written once and never read back
                self._aggregates[aggregate.id] = aggregate
                self._aggregates.move_to_end(aggregate.id)
        while len(self._aggregates) > self.maxsize:
            self._aggregates.popitem(last=False)

    def clear(self) -> None:
        self._aggregates.clear()


class BatchUnitOfWork:
    """Aggregates loaded or created while processing one batch, each loaded at most once."""

    def __init__(self, alerting: Alerting, known: KnownAggregates | None = None):
        self._alerting = alerting
        self._repository = alerting.repository
        self._known = known
        self._aggregates: dict[UUID, Aggregate | None] = {}

    def preload_slots(self, slot_ids) -> None:
        """Look up every slot a batch needs in one read instead of one read per alert."""
        unknown = {
            slot_id for slot_id in slot_ids
            if slot_id not in self._aggregates and (self._known is None or self._known.get(slot_id) is None)
        }
        if unknown:
            found = self._alerting.get_slots(unknown)
            for slot_id in unknown:
                self._aggregates[slot_id] = found.get(slot_id)  # None: no such slot yet

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        if aggregate_id not in self._aggregates:
            aggregate = self._known.get(aggregate_id) if self._known else None
            if aggregate is None:
                try:
                    aggregate = self._repository.get(aggregate_id)
                except AggregateNotFoundError:
                    return None
            self._aggregates[aggregate_id] = aggregate
        return self._aggregates[aggregate_id]

    def add(self, aggregate: Aggregate) -> None:
        self._aggregates[aggregate.id] = aggregate

    def all(self) -> list[Aggregate]:
        return [a for a in self._aggregates.values() if a is not None]

    def changed(self) -> list[Aggregate]:
        return [a for a in self.all() if a.pending_events]


class IngestProcessor:
    def __init__(
        self,
        inbox: Inbox,
        alerting: Alerting,
        config: Configuration,
        batch_size: int = 200,
        batch_interval: float = 0.05,
    ):
        self.inbox = inbox
        self.alerting = alerting
        self.config = config
        self.batch_size = batch_size
        self.batch_interval = batch_interval  # see run_forever
        self.waker = Waker()
        self.known = KnownAggregates()
        self._settings: dict[UUID, IntegrationSettings] = {}
        self._settings_position: int | None = None
        self._position: int | None = None  # the inbox position saved last; None: read it

    def _forget_settings_if_changed(self) -> None:
        """Configuration changes rarely: keep what was read until the configuration log moves on."""
        config_position = self.config.recorder.max_notification_id()
        if config_position != self._settings_position:
            self._settings.clear()
            self._settings_position = config_position

    def _integration_settings(self, integration_id: UUID) -> IntegrationSettings:
        if integration_id not in self._settings:
            self._settings[integration_id] = self._load_settings(integration_id)
        return self._settings[integration_id]

    def _load_settings(self, integration_id: UUID) -> IntegrationSettings:
        integration: Integration = self.config.get_integration(integration_id)
        return IntegrationSettings(
            id=integration.id,
            type=get_type(integration.type),
            templates=integration.templates,
            template_revision=integration.template_revision,
            default_route_id=integration.default_route_id,
        )

    def run_batch(self) -> int:
        """Process the next batch; returns how many inbox entries it read (0: caught up)."""
        try:
            return self._run_batch()
        except BaseException:
            self.known.clear()  # aggregates may hold changes that were never saved
            self._position = None  # and the save may or may not have committed
            raise

    def _run_batch(self) -> int:
        for attempt in range(20):
            # Ingest is the only writer of its position (one active copy): what it last saved
            # is the position, and a conflict makes it read the store again.
            if self._position is None:
                self._position = self.alerting.processed_position()
            position = self._position
            notifications = self.inbox.recorder.select_notifications(
                position, self.batch_size, inclusive_of_start=False
            )
            if not notifications:
                return 0
            uow = BatchUnitOfWork(self.alerting, self.known)
            self._forget_settings_if_changed()
            decided = []  # templates first, so that the batch's slots can be read at once
            for notification in notifications:
                entry = self.inbox.mapper.to_domain_event(notification)
                integration = self._integration_settings(entry.integration_id)
                if isinstance(entry, HeartbeatPing.HeartbeatPinged):
                    decided.append((entry, integration, None))
                else:
                    is_demo = entry.kind == KIND_DEMO
                    decisions = decide_entry(integration, entry.originator_id, entry.payload_json, is_demo)
                    decided.append((entry, integration, decisions))
            uow.preload_slots(d.slot_id for _, _, decisions in decided for d in decisions or ())
            for entry, integration, decisions in decided:
                if decisions is None:
                    ingest_heartbeat_ping(uow, integration, entry.originator_id, entry.received_at)
                else:
                    record_entry(
                        uow, integration, entry.originator_id, decisions, entry.received_at, entry.kind == KIND_DEMO
                    )
            try:
                self.alerting.save_processed(uow.changed(), Tracking(self.inbox.name, notifications[-1].id))
            except IntegrityError:
                # A user action changed a group meanwhile (or another ingest ran): redo on fresh state.
                log.debug("ingest batch conflicted (attempt %d); retrying", attempt + 1)
                self.known.clear()
                self._position = None
                continue
            self._position = notifications[-1].id
            self.known.remember(uow.all())
            return len(notifications)
        raise RuntimeError("ingest batch kept conflicting; giving up for now")

    def expire_heartbeat(self, heartbeat_id: UUID, fence: int, at) -> bool:
        """Fenced: sends the expired alert once, and nothing when a ping came in meanwhile.

        The heartbeat of a deleted integration is retired instead (True: that changed it).
        """
        for _ in range(20):
            uow = BatchUnitOfWork(self.alerting)
            heartbeat = uow.get(heartbeat_id)
            if not isinstance(heartbeat, Heartbeat):
                return False
            if self.config.get_integration(heartbeat.integration_id).deleted:
                # Deleted since the deadline was set, and the deletion's own disarm is not (yet)
                # recorded: disarm now instead of raising an alert nothing could resolve.
                if not heartbeat.retire(at=at):
                    return False
            else:
                settings = self._load_settings(heartbeat.integration_id)
                if expire_heartbeat(uow, settings, heartbeat_id, fence, at) is None:
                    return False
            try:
                self.alerting.save(*uow.changed())
            except IntegrityError:
                continue  # a ping or an action raced with us: decide again on fresh state
            return True
        raise RuntimeError("heartbeat expiry kept conflicting; the ticker will try again")

    def catch_up(self) -> int:
        total = 0
        while count := self.run_batch():
            total += count
        return total

    def run_forever(self, stop: threading.Event, idle_timeout: float = 1.0, status=None) -> None:
        """Follow the inbox until ``stop``; ``status`` (a ``projections.follower_status.FollowerStatus``)
        hears of every failure and of successes, for /health and /metrics."""
        backoff = 0.1
        while not stop.is_set():
            began = time.monotonic()
            try:
                count = self.run_batch()
                backoff = 0.1
            except Exception as exc:  # a database outage must not end ingest: keep retrying
                log.exception("ingest failed; retrying in %.1fs", backoff)
                if status is not None:
                    status.failed(exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if status is not None:
                status.succeeded()
            if count == 0:
                self.waker.wait(idle_timeout)
            elif count < self.batch_size:
                # Under load, entries keep arriving while a batch runs, so the next batch would be
                # as small; and a batch costs a few queries and a transaction whatever its size.
                # Starting batches at most every batch_interval makes them bigger (a full batch
                # goes on at once): about a third less CPU per alert when the host is busy.
                stop.wait(self.batch_interval - (time.monotonic() - began))
