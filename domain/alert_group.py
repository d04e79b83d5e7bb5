"""Alert groups and the aggregates that keep grouping consistent.

``GroupingSlot`` is a small index aggregate, one per (integration, route, distinction): it is
the strongly consistent answer to "which group is open for this key?". It is saved in the same
transaction as the group it opens or closes, so two racing writers cannot both open a group.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event


class State(str, Enum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    SILENCED = "silenced"


class ActionRefused(Exception):
    """A user action whose precondition does not hold; the message is OnCall's 400 text."""


# Who or what caused a change, as OnCall's resolved_by/acknowledged_by sources name it.
SOURCE_USER = "user"
SOURCE_ALERT_SOURCE = "source"
SOURCE_TIMEOUT = "timeout"
SOURCE_LAST_STEP = "last_step"  # the escalation chain's "resolve" step
SOURCE_DISABLE_MAINTENANCE = "disable_maintenance"  # the end of a maintenance


class GroupingSlot(Aggregate):
    @event("Created")
    def __init__(self, integration_id: UUID, route_id: UUID, distinction: str):
        self.integration_id = integration_id
        self.route_id = route_id
        self.distinction = distinction
        self.generation = 0
        self.open_group_id: UUID | None = None
        self.last_resolved_group_id: UUID | None = None

    @staticmethod
    def create_id(integration_id: UUID, route_id: UUID, distinction: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/grouping-slots/{integration_id}/{route_id}/{distinction}")

    @event("GroupOpened")
    def open_group(self, group_id: UUID, generation: int) -> None:
        self.open_group_id = group_id
        self.generation = generation

    @event("GroupClosed")
    def close_group(self, group_id: UUID) -> None:
        if self.open_group_id == group_id:
            self.open_group_id = None
        self.last_resolved_group_id = group_id


class Alert(Aggregate):
    """One received alert: the raw payload and what ingest decided about it."""

    @event("Received")
    def __init__(
        self,
        inbox_id: UUID,
        index: int,
        alert_group_id: UUID,
        integration_id: UUID,
        payload_json: str,
        received_at: datetime,
        is_resolve_signal: bool,
        is_first_in_group: bool,
        template_errors: dict[str, str] | None = None,
        alerts_not_taken: int = 0,
    ):
        self.inbox_id = inbox_id
        self.index = index
        self.alert_group_id = alert_group_id
        self.integration_id = integration_id
        self.payload_json = payload_json
        self.received_at = received_at
        self.is_resolve_signal = is_resolve_signal
        self.is_first_in_group = is_first_in_group
        # Template field -> "Template Error: ..." / "Template Warning: ..." for those that failed.
        self.template_errors = template_errors
        # On the last alert taken from a notification with more alerts than ingest takes from one.
        self.alerts_not_taken = alerts_not_taken

    @staticmethod
    def create_id(inbox_id: UUID, index: int) -> UUID:
        # Derived from the inbox entry, so processing the same entry twice cannot add it twice.
        return uuid5(NAMESPACE_URL, f"/alerts/{inbox_id}/{index}")


class AlertGroup(Aggregate):
    @event("Registered")
    def __init__(
        self,
        integration_id: UUID,
        route_id: UUID,
        distinction: str,
        generation: int,
        title: str,
        source_link: str | None,
        template_revision: int,
        started_at: datetime,
        is_demo: bool,
    ):
        self.integration_id = integration_id
        self.route_id = route_id
        self.distinction = distinction
        self.generation = generation
        self.title = title
        self.source_link = source_link
        self.template_revision = template_revision
        self.started_at = started_at
        self.is_demo = is_demo
        self.alerts_count = 0
        self.last_alert_id: UUID | None = None
        self.last_alert_at: datetime | None = None  # absent from snapshots older than the field
        # Legacy per-alert types: the latest state of every label set seen (True = resolved).
        self.label_sets_resolved: dict[str, bool] = {}
        self.acknowledged = False
        self.resolved = False
        self.silenced = False
        self.silenced_until: datetime | None = None
        # Fences the timed unsilence: a deadline carries the fence it was set with.
        self.silence_fence = 0

    @staticmethod
    def create_id(integration_id: UUID, route_id: UUID, distinction: str, generation: int) -> UUID:
        return uuid5(
            NAMESPACE_URL, f"/alert-groups/{integration_id}/{route_id}/{distinction}/{generation}"
        )

    @property
    def slot_id(self) -> UUID:
        return GroupingSlot.create_id(self.integration_id, self.route_id, self.distinction)

    @property
    def state(self) -> State:
        if self.resolved:
            return State.RESOLVED
        if self.acknowledged:
            return State.ACKNOWLEDGED
        if self.silenced:
            return State.SILENCED
        return State.FIRING

    # --- events -------------------------------------------------------------------------------

    @event("AlertAttached")
    def attach_alert(
        self, alert_id: UUID, received_at: datetime, is_resolve_signal: bool, label_set: str | None = None
    ) -> None:
        self.alerts_count += 1
        self.last_alert_id = alert_id
        self.last_alert_at = received_at
        if label_set is not None:
            self.label_sets_resolved[label_set] = is_resolve_signal

    @property
    def every_label_set_resolved(self) -> bool:
        return all(self.label_sets_resolved.values())

    @event("Acknowledged")
    def _acknowledged(self, by: str | None, source: str, at: datetime) -> None:
        self.acknowledged = True

    @event("Unacknowledged")
    def _unacknowledged(self, by: str | None, at: datetime) -> None:
        self.acknowledged = False

    @event("Resolved")
    def _resolved(self, by: str | None, source: str, at: datetime) -> None:
        self.resolved = True

    @event("Unresolved")
    def _unresolved(self, by: str | None, at: datetime) -> None:
        self.resolved = False
        self.acknowledged = False

    @event("Silenced")
    def _silenced(
        self, by: str | None, delay: int | None, until: datetime | None, fence: int, at: datetime
    ) -> None:
        self.silenced = True
        self.silenced_until = until
        self.silence_fence = fence

    @event("Unsilenced")
    def _unsilenced(self, by: str | None, reason: str, at: datetime) -> None:
        self.silenced = False
        self.silenced_until = None

    # --- commands (preconditions and texts as OnCall's public API) ----------------------------

    def acknowledge(self, by: str | None, at: datetime) -> None:
        if self.acknowledged:
            raise ActionRefused("Can't acknowledge an acknowledged alert group")
        if self.resolved:
            raise ActionRefused("Can't acknowledge a resolved alert group")
        if self.silenced:
            self._unsilenced(by=by, reason="Acknowledge button", at=at)
        self._acknowledged(by=by, source=SOURCE_USER, at=at)

    def unacknowledge(self, by: str | None, at: datetime) -> None:
        if not self.acknowledged:
            raise ActionRefused("Can't unacknowledge an unacknowledged alert group")
        if self.resolved:
            raise ActionRefused("Can't unacknowledge a resolved alert group")
        self._unacknowledged(by=by, at=at)

    def resolve(self, by: str | None, at: datetime) -> None:
        if self.resolved:
            raise ActionRefused("Can't resolve a resolved alert group")
        if self.silenced:
            self._unsilenced(by=by, reason="Resolve button", at=at)
        self._resolved(by=by, source=SOURCE_USER, at=at)

    def unresolve(self, by: str | None, at: datetime) -> None:
        if not self.resolved:
            raise ActionRefused("Can't unresolve an unresolved alert group")
        self._unresolved(by=by, at=at)

    def silence(self, by: str | None, delay: int, at: datetime) -> None:
        """Silence for ``delay`` seconds; 0 or -1 silences forever (OnCall quirk 12)."""
        if self.resolved:
            raise ActionRefused("Can't silence a resolved alert group")
        if self.acknowledged:
            raise ActionRefused("Can't silence an acknowledged alert group")
        if self.silenced:
            self._unsilenced(by=by, reason="Silence button", at=at)
        fence = self.silence_fence + 1
        if delay > 0:
            until = at + timedelta(seconds=delay)
            self._silenced(by=by, delay=delay, until=until, fence=fence, at=at)
        else:
            self._silenced(by=by, delay=None, until=None, fence=fence, at=at)

    def unsilence(self, by: str | None, at: datetime) -> None:
        if not self.silenced:
            raise ActionRefused("Can't unsilence an unsilenced alert group")
        if self.resolved:
            raise ActionRefused("Can't unsilence a resolved alert group")
        if self.acknowledged:
            raise ActionRefused("Can't unsilence an acknowledged alert group")
        self._unsilenced(by=by, reason="Unsilence button", at=at)

    def unsilence_when_due(self, fence: int, at: datetime) -> bool:
        """The timed end of a silence; a no-op unless the silence it was set for still holds."""
        if not self.silenced or self.silence_fence != fence or self.resolved or self.acknowledged:
            return False
        self._unsilenced(by=None, reason="auto unsilence", at=at)
        return True

    def acknowledge_by_source(self, at: datetime) -> bool:
        if self.acknowledged or self.resolved:
            return False
        if self.silenced:
            self._unsilenced(by=None, reason="Acknowledge by source", at=at)
        self._acknowledged(by=None, source=SOURCE_ALERT_SOURCE, at=at)
        return True

    def resolve_by_source(self, at: datetime) -> bool:
        return self.resolve_automatically(SOURCE_ALERT_SOURCE, at)

    def resolve_automatically(self, source: str, at: datetime) -> bool:
        """Resolve on behalf of no user (the alert source, the last escalation step, the end of
        a maintenance); False when already resolved."""
        if self.resolved:
            return False
        if self.silenced:
            reason = "Resolve by source" if source == SOURCE_ALERT_SOURCE else "Resolve automatically"
            self._unsilenced(by=None, reason=reason, at=at)
        self._resolved(by=None, source=source, at=at)
        return True
