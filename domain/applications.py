"""Event-sourced applications: one per write stream, each with its own events table and lock.

* ``Inbox``: accepted inbound requests (hot, append-only, written before the HTTP answer).
* ``Alerting``: alert groups, grouping slots and alerts (written by ingest and by user actions).
* ``Configuration``: integrations and API tokens (cold).

The persistence module comes from the environment (POPO in unit tests, SQLite embedded,
PostgreSQL in production); nothing here knows which.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, ProcessRecorder, Tracking
from eventsourcing.utils import retry

from domain.alert_group import AlertGroup, GroupingSlot
from domain.configuration import ApiToken, Integration, token_digest
from domain.heartbeat import Heartbeat
from domain.inbox import HeartbeatPing, ReceivedAlert

CONFLICT_RETRY = {"max_attempts": 20, "wait": 0.005, "stall": 0.0}


class NotifyingApplication(Application[UUID]):
    """Calls in-process listeners after each save, so embedded followers wake at once."""

    def __init__(self, env=None):
        super().__init__(env=env)
        self._listeners: list[Callable[[], None]] = []
        self._listeners_lock = threading.Lock()

    def add_listener(self, listener: Callable[[], None]) -> None:
        with self._listeners_lock:
            self._listeners.append(listener)

    def _notify(self, recordings) -> None:
        super()._notify(recordings)
        if recordings:
            for listener in list(self._listeners):
                listener()


class Inbox(NotifyingApplication):
    name = "inbox"

    def receive_alerts(self, entries: Iterable[ReceivedAlert | HeartbeatPing]) -> int:
        """Commit many entries in one transaction (group commit); returns the last position."""
        recordings = self.save(*entries)
        return recordings[-1].notification.id


class Alerting(NotifyingApplication):
    """Alert groups; ingest saves its decisions together with its position in the inbox."""

    name = "alerting"
    snapshotting_intervals = {AlertGroup: 200}

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def save_processed(self, aggregates: Iterable, tracking: Tracking) -> int | None:
        """Save ingest's changes and the inbox position in one transaction (exactly once)."""
        processing = ProcessingEvent[UUID](tracking)
        processing.collect_events(*aggregates)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings[-1].notification.id if recordings else None

    def processed_position(self) -> int:
        return self.recorder.max_tracking_id(Inbox.name) or 0

    def get_group(self, group_id: UUID) -> AlertGroup:
        return self.repository.get(group_id)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def act(self, group_id: UUID, action: str, by: str | None, at: datetime, **kwargs) -> int:
        """Run a user action (acknowledge, resolve, silence, ...) on a group.

        Load, decide, save; on a version conflict the whole command runs again on fresh state.
        Raises ``ActionRefused`` when the group's state does not allow the action.
        """
        group: AlertGroup = self.repository.get(group_id)
        getattr(group, action)(by=by, at=at, **kwargs)
        changed = [group]
        if group.resolved:
            slot: GroupingSlot = self.repository.get(group.slot_id)
            if slot.open_group_id == group.id:
                # A resolved group no longer takes new alerts: the next one opens a new group.
                slot.close_group(group_id=group.id)
                changed.append(slot)
        recordings = self.save(*changed)
        return recordings[-1].notification.id

    @retry(IntegrityError, **CONFLICT_RETRY)
    def unsilence_when_due(self, group_id: UUID, fence: int, at: datetime) -> int | None:
        group: AlertGroup = self.repository.get(group_id)
        if not group.unsilence_when_due(fence=fence, at=at):
            return None
        return self.save(group)[-1].notification.id


    @retry(IntegrityError, **CONFLICT_RETRY)
    def change_heartbeat(
        self, integration_id: UUID, at: datetime, timeout_seconds: int | None = None, reset: bool = False
    ) -> int | None:
        """Change a heartbeat's timeout and/or reset it; returns the position, None if unchanged."""
        heartbeat_id = Heartbeat.create_id(integration_id)
        try:
            heartbeat: Heartbeat = self.repository.get(heartbeat_id)
        except AggregateNotFoundError:
            heartbeat = Heartbeat(integration_id=integration_id)
        if timeout_seconds is not None:
            heartbeat.change_timeout(timeout_seconds)
        if reset:
            heartbeat.reset(at=at)
        recordings = self.save(heartbeat)
        return recordings[-1].notification.id if recordings else None


class Configuration(NotifyingApplication):
    name = "config"

    def create_integration(self, **fields) -> tuple[Integration, int]:
        integration = Integration(**fields)
        return integration, self.save(integration)[-1].notification.id

    def get_integration(self, integration_id: UUID) -> Integration:
        return self.repository.get(integration_id)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def update_integration(
        self, integration_id: UUID, *, name=None, description_short=..., team_id=..., templates=None
    ) -> int | None:
        """Change what was given (``...`` and ``None`` name mean "keep"); returns the position."""
        integration: Integration = self.repository.get(integration_id)
        new_name = integration.name if name is None else name
        new_description = integration.description_short if description_short is ... else description_short
        new_team = integration.team_id if team_id is ... else team_id
        if (new_name, new_description, new_team) != (
            integration.name,
            integration.description_short,
            integration.team_id,
        ):
            integration.update(name=new_name, description_short=new_description, team_id=new_team)
        if templates:
            integration.change_templates(templates)
        recordings = self.save(integration)
        return recordings[-1].notification.id if recordings else None

    @retry(IntegrityError, **CONFLICT_RETRY)
    def delete_integration(self, integration_id: UUID, at: datetime) -> int | None:
        integration: Integration = self.repository.get(integration_id)
        if integration.deleted:
            return None
        integration.delete(at=at)
        return self.save(integration)[-1].notification.id

    def create_api_token(self, name: str, role: str, token: str, at: datetime) -> int:
        api_token = ApiToken(name=name, role=role, token_hash=token_digest(token), created_at=at)
        return self.save(api_token)[-1].notification.id
