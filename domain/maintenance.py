"""Maintenance of an integration (OnCall's maintenance mode): its start, its stop and its end.

A maintenance is recorded on its ``Integration`` (configuration store): "debug" escalates
nothing, "maintenance" escalates nothing and collects every alert the integration receives into
one group (``domain.ingest``). Whether one is in force at an instant is a pure question of the
recorded times (``Integration.maintenance_at``), so a maintenance ends on time with no process
running.

Its group still has to be resolved when it ends. The start of a collecting maintenance sets a
deadline at its planned end, a stop moves that deadline to the stop; when due, the deadline
becomes ``EndMaintenance`` in the alerting store: it records the end on the maintenance's
``MaintenanceCollection`` (once) and resolves the group, "by stop maintenance", if there is one.
Ingest writes the same collection when it opens the group, so an alert received during the
maintenance but taken by ingest after the end finds the end there and starts a resolved group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import retry

from domain.alert_group import SOURCE_DISABLE_MAINTENANCE, AlertGroup
from domain.commands import FencedCommand, UnitOfWork, deadline, handles
from domain.configuration import Integration, MaintenanceWindow
from domain.ingest import MaintenanceCollection

if TYPE_CHECKING:
    from domain.applications import Configuration

CONFLICT_RETRY = {"max_attempts": 20, "wait": 0.005, "stall": 0.0}


@deadline("maintenance-end")
@dataclass(frozen=True)
class EndMaintenance(FencedCommand):
    """``subject``: the maintenance's id (``domain.configuration.maintenance_id``); ``fence``: its
    number. Its collection records the end once, so an end fired twice changes something once."""


KIND_MAINTENANCE_END = EndMaintenance.kind


@handles(EndMaintenance)
def end_maintenance(uow: UnitOfWork, command: EndMaintenance, context: object = None) -> None:
    collection = uow.get(command.subject)
    if collection is None:
        # No alert of it has been taken yet: the end is recorded for the first one to find.
        collection = MaintenanceCollection(maintenance_id=command.subject)
        uow.add(collection)
    if not isinstance(collection, MaintenanceCollection) or not collection.end(at=command.at):
        return
    if collection.group_id is not None:
        group = uow.get(collection.group_id)
        if isinstance(group, AlertGroup):
            group.resolve_automatically(SOURCE_DISABLE_MAINTENANCE, at=command.at)


# --- starting and stopping (the configuration store) --------------------------------------------


@retry(IntegrityError, **CONFLICT_RETRY)
def start_maintenance(
    config: Configuration, integration_id: UUID, mode: str, duration: int, by: str | None, at: datetime
) -> tuple[MaintenanceWindow, int]:
    """Start a maintenance of the integration; returns it and the position of its event.

    Raises ``MaintenanceRefused`` ("Already on maintenance") and ``ValueError`` (mode, duration).
    """
    integration: Integration = config.get_integration(integration_id)
    window = integration.start_maintenance(mode=mode, duration=duration, by=by, at=at)
    return window, config.save(integration)[-1].notification.id


@retry(IntegrityError, **CONFLICT_RETRY)
def stop_maintenance(config: Configuration, integration_id: UUID, by: str | None, at: datetime) -> int | None:
    """Stop the integration's maintenance; the position of the event, None when none was in force."""
    integration: Integration = config.get_integration(integration_id)
    if integration.stop_maintenance(by=by, at=at) is None:
        return None
    return config.save(integration)[-1].notification.id
