"""The ingest processor: follows the inbox in order and records grouping decisions.

A batch of inbox entries becomes one transaction on the alerting store, together with the
position reached in the inbox (exactly once: a crash before commit redoes the batch, a crash
after it skips the batch). One ingest process runs at a time, so the same inbox and the same
configuration always give the same groups.
"""

from __future__ import annotations

import logging
import threading
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Tracking

from domain.applications import Alerting, Configuration, Inbox
from domain.configuration import Integration
from domain.heartbeat import Heartbeat
from domain.inbox import KIND_DEMO, HeartbeatPing, ReceivedAlert
from domain.ingest import IntegrationSettings, expire_heartbeat, ingest_entry, ingest_heartbeat_ping
from domain.integrations import get_type
from projections.runner import Waker

log = logging.getLogger(__name__)


class BatchUnitOfWork:
    """Aggregates loaded or created while processing one batch, each loaded at most once."""

    def __init__(self, alerting: Alerting):
        self._repository = alerting.repository
        self._aggregates: dict[UUID, Aggregate | None] = {}

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        if aggregate_id not in self._aggregates:
            try:
                self._aggregates[aggregate_id] = self._repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None
        return self._aggregates[aggregate_id]

    def add(self, aggregate: Aggregate) -> None:
        self._aggregates[aggregate.id] = aggregate

    def changed(self) -> list[Aggregate]:
        return [a for a in self._aggregates.values() if a is not None and a.pending_events]


class IngestProcessor:
    def __init__(self, inbox: Inbox, alerting: Alerting, config: Configuration, batch_size: int = 200):
        self.inbox = inbox
        self.alerting = alerting
        self.config = config
        self.batch_size = batch_size
        self.waker = Waker()

    def _integration_settings(self, integration_id: UUID) -> IntegrationSettings:
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
        for attempt in range(20):
            position = self.alerting.processed_position()
            notifications = self.inbox.recorder.select_notifications(
                position, self.batch_size, inclusive_of_start=False
            )
            if not notifications:
                return 0
            uow = BatchUnitOfWork(self.alerting)
            integrations: dict[UUID, IntegrationSettings] = {}
            for notification in notifications:
                entry = self.inbox.mapper.to_domain_event(notification)
                if entry.integration_id not in integrations:
                    integrations[entry.integration_id] = self._integration_settings(entry.integration_id)
                integration = integrations[entry.integration_id]
                if isinstance(entry, HeartbeatPing.HeartbeatPinged):
                    ingest_heartbeat_ping(uow, integration, entry.originator_id, entry.received_at)
                else:
                    ingest_entry(
                        uow,
                        integration,
                        entry_id=entry.originator_id,
                        payload_json=entry.payload_json,
                        received_at=entry.received_at,
                        is_demo=entry.kind == KIND_DEMO,
                    )
            try:
                self.alerting.save_processed(uow.changed(), Tracking(self.inbox.name, notifications[-1].id))
            except IntegrityError:
                # A user action changed a group meanwhile (or another ingest ran): redo on fresh state.
                log.debug("ingest batch conflicted (attempt %d); retrying", attempt + 1)
                continue
            return len(notifications)
        raise RuntimeError("ingest batch kept conflicting; giving up for now")

    def expire_heartbeat(self, heartbeat_id: UUID, fence: int, at) -> bool:
        """Fenced: sends the expired alert once, and nothing when a ping came in meanwhile."""
        for _ in range(20):
            uow = BatchUnitOfWork(self.alerting)
            heartbeat = uow.get(heartbeat_id)
            if not isinstance(heartbeat, Heartbeat):
                return False
            settings = self._integration_settings(heartbeat.integration_id)
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

    def run_forever(self, stop: threading.Event, idle_timeout: float = 1.0) -> None:
        backoff = 0.1
        while not stop.is_set():
            try:
                count = self.run_batch()
                backoff = 0.1
            except Exception:  # a database outage must not end ingest: keep retrying
                log.exception("ingest failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if count < self.batch_size:
                self.waker.wait(idle_timeout)
