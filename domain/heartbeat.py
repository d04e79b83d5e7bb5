"""Heartbeats: a monitor that stops pinging raises an alert by itself.

A heartbeat is armed by its first ping. Each ping moves the deadline to ``ping + timeout``; the
deadline carries a fence, so an expiry computed for an older ping is a no-op. Expiry and the
next ping after it send the integration type's "expired" and "restored" payloads through the
normal ingest pipeline (grouping, routing, escalation). Deleting the integration retires its
heartbeat: disarmed for good, so a ping still in the inbox or a deadline already read does nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

TIMEOUT_OPTIONS = (60, 120, 180, 300, 600, 900, 1800, 3600, 43200, 86400)
DEFAULT_TIMEOUT = 600

STATUS_NOT_ARMED = "not_armed"
STATUS_ALIVE = "alive"
STATUS_EXPIRED = "expired"


class Heartbeat(Aggregate):
    @event("Created")
    def __init__(self, integration_id: UUID, timeout_seconds: int = DEFAULT_TIMEOUT):
        self.integration_id = integration_id
        self.timeout_seconds = timeout_seconds
        self.last_ping_at: datetime | None = None
        self.deadline: datetime | None = None
        self.expired = False
        self.fence = 0
        self.retired = False

    @staticmethod
    def create_id(integration_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/heartbeats/{integration_id}")

    @property
    def status(self) -> str:
        if self.last_ping_at is None:
            return STATUS_NOT_ARMED
        return STATUS_EXPIRED if self.expired else STATUS_ALIVE

    # --- events -------------------------------------------------------------------------------

    @event("Pinged")
    def _pinged(self, at: datetime, deadline: datetime, fence: int) -> None:
        self.last_ping_at = at
        self.deadline = deadline
        self.fence = fence

    @event("Expired")
    def _expired(self, at: datetime, fence: int) -> None:
        self.expired = True
        self.deadline = None

    @event("Restored")
    def _restored(self, at: datetime) -> None:
        self.expired = False

    @event("TimeoutChanged")
    def _timeout_changed(self, timeout_seconds: int, deadline: datetime | None, fence: int) -> None:
        self.timeout_seconds = timeout_seconds
        self.deadline = deadline
        self.fence = fence

    @event("Reset")
    def _reset(self, at: datetime, fence: int) -> None:
        self.last_ping_at = None
        self.deadline = None
        self.expired = False
        self.fence = fence

    @event("Retired")
    def _retired(self, at: datetime, fence: int) -> None:
        self.retired = True
        self.last_ping_at = None
        self.deadline = None
        self.expired = False
        self.fence = fence

    # --- commands -----------------------------------------------------------------------------

    def ping(self, at: datetime) -> bool:
        """Record a ping; True when it ends an expiry (the caller sends the restored alert)."""
        if self.retired:
            return False  # accepted before its integration was deleted, processed after
        was_expired = self.expired
        self._pinged(at=at, deadline=at + timedelta(seconds=self.timeout_seconds), fence=self.fence + 1)
        if was_expired:
            self._restored(at=at)
        return was_expired

    def expire(self, fence: int, at: datetime) -> bool:
        """The deadline passed; True when this is a new expiry (the caller sends the expired alert)."""
        if self.retired or self.last_ping_at is None or self.expired or fence != self.fence:
            return False
        self._expired(at=at, fence=fence)
        return True

    def change_timeout(self, timeout_seconds: int) -> None:
        if timeout_seconds not in TIMEOUT_OPTIONS:
            raise ValueError(f"timeout_seconds must be one of {', '.join(map(str, TIMEOUT_OPTIONS))}")
        if timeout_seconds == self.timeout_seconds:
            return
        deadline = None
        if self.last_ping_at is not None and not self.expired:
            deadline = self.last_ping_at + timedelta(seconds=timeout_seconds)
        self._timeout_changed(timeout_seconds=timeout_seconds, deadline=deadline, fence=self.fence + 1)

    def reset(self, at: datetime) -> None:
        """Disarm: no deadline until the next ping arms it again."""
        self._reset(at=at, fence=self.fence + 1)

    def retire(self, at: datetime) -> bool:
        """The integration was deleted: disarm for good; False if that was already recorded."""
        if self.retired:
            return False
        self._retired(at=at, fence=self.fence + 1)
        return True
