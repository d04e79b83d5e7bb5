"""Commands: what a user or a due deadline asks of the alerting store, as typed values.

A command is a frozen dataclass; its handler is a pure function over a unit of work, registered
for the command's type with ``@handles``. The application loads through the unit of work, runs
the handler and saves what changed, running the whole command again on a version conflict
(``Alerting.handle``). Adding a command is one dataclass plus one handler; nothing dispatches on
names.

Deadlines are recorded facts (a silence's end, a heartbeat's next deadline: both in the events)
that the deadlines read model lists by kind. ``@deadline`` ties a kind to the fenced command a
due deadline of that kind becomes; the command carries the fence the deadline was set with, and
its handler does nothing when the state has moved on since. So a deadline fired twice (the
ticker crashed after the command was saved but before the deadline row was cleared) changes
something once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from domain.alert_group import AlertGroup
from domain.heartbeat import Heartbeat
from domain.ingest import Evaluator, IntegrationSettings, expire_heartbeat


class UnitOfWork(Protocol):
    def get(self, aggregate_id: UUID) -> Aggregate | None: ...

    def add(self, aggregate: Aggregate) -> None: ...


class Command:
    """Base of every command type (so a handler registry can refuse anything else)."""


C = TypeVar("C", bound=Command)
Handler = Callable[[UnitOfWork, Any, Any], None]


class CommandHandlers:
    """Command type -> its handler; exactly one handler per type."""

    def __init__(self) -> None:
        self._handlers: dict[type, Handler] = {}

    def register(self, command_type: type[Command]) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            if command_type in self._handlers:
                raise ValueError(f"{command_type.__name__} already has a handler")
            self._handlers[command_type] = handler
            return handler

        return decorate

    def handler_for(self, command: Command) -> Handler:
        try:
            return self._handlers[type(command)]
        except KeyError:
            raise TypeError(f"no handler for {type(command).__name__}") from None


HANDLERS = CommandHandlers()
handles = HANDLERS.register


# --- user actions on an alert group ----------------------------------------------------------


@dataclass(frozen=True)
class GroupAction(Command):
    group_id: UUID
    by: str | None
    at: datetime


@dataclass(frozen=True)
class Acknowledge(GroupAction):
    pass


@dataclass(frozen=True)
class Unacknowledge(GroupAction):
    pass


@dataclass(frozen=True)
class Resolve(GroupAction):
    pass


@dataclass(frozen=True)
class Unresolve(GroupAction):
    pass


@dataclass(frozen=True)
class Silence(GroupAction):
    delay: int  # seconds; 0 or -1: forever (OnCall's public API)


@dataclass(frozen=True)
class Unsilence(GroupAction):
    pass


# The names the API and the dashboard use in their URLs, for parsing a request into a command.
USER_ACTIONS: dict[str, type[GroupAction]] = {
    "acknowledge": Acknowledge,
    "unacknowledge": Unacknowledge,
    "resolve": Resolve,
    "unresolve": Unresolve,
    "silence": Silence,
    "unsilence": Unsilence,
}


def _group(uow: UnitOfWork, group_id: UUID) -> AlertGroup:
    group = uow.get(group_id)
    if not isinstance(group, AlertGroup):
        raise AggregateNotFoundError(group_id)
    return group


def close_slot_if_resolved(uow: UnitOfWork, group: AlertGroup) -> None:
    if group.resolved:
        slot = uow.get(group.slot_id)
        if slot is not None and slot.open_group_id == group.id:
            # A resolved group no longer takes new alerts: the next one opens a new group.
            slot.close_group(group_id=group.id)


# What else stopping a group's paging changes in the same transaction: ``domain.paging`` adds the
# group's escalation (kept here as a list so this module needs nothing from the modules that
# register commands in it).
ON_PAGING_STOPPED: list[Callable[[UnitOfWork, AlertGroup, datetime], None]] = []


def _paging_stopped(uow: UnitOfWork, group: AlertGroup, at: datetime) -> None:
    for also in ON_PAGING_STOPPED:
        also(uow, group, at)


@handles(Acknowledge)
def acknowledge(uow: UnitOfWork, command: Acknowledge, context: object = None) -> None:
    group = _group(uow, command.group_id)
    group.acknowledge(by=command.by, at=command.at)
    _paging_stopped(uow, group, command.at)


@handles(Unacknowledge)
def unacknowledge(uow: UnitOfWork, command: Unacknowledge, context: object = None) -> None:
    _group(uow, command.group_id).unacknowledge(by=command.by, at=command.at)


@handles(Resolve)
def resolve(uow: UnitOfWork, command: Resolve, context: object = None) -> None:
    group = _group(uow, command.group_id)
    group.resolve(by=command.by, at=command.at)
    close_slot_if_resolved(uow, group)
    _paging_stopped(uow, group, command.at)


@handles(Unresolve)
def unresolve(uow: UnitOfWork, command: Unresolve, context: object = None) -> None:
    _group(uow, command.group_id).unresolve(by=command.by, at=command.at)


@handles(Silence)
def silence(uow: UnitOfWork, command: Silence, context: object = None) -> None:
    group = _group(uow, command.group_id)
    group.silence(by=command.by, delay=command.delay, at=command.at)
    _paging_stopped(uow, group, command.at)


@handles(Unsilence)
def unsilence(uow: UnitOfWork, command: Unsilence, context: object = None) -> None:
    _group(uow, command.group_id).unsilence(by=command.by, at=command.at)


# --- deadlines: recorded facts that become fenced commands when due ---------------------------


@dataclass(frozen=True)
class FencedCommand(Command):
    """What a due deadline asks for: ``subject`` is the aggregate, ``fence`` the state expected."""

    kind: ClassVar[str] = ""  # set by @deadline
    application: ClassVar[str] = ""  # the name of the application that runs it; set by @deadline
    subject: UUID
    fence: int
    at: datetime


DEADLINE_COMMANDS: dict[str, type[FencedCommand]] = {}


def deadline(kind: str, application: str = "alerting") -> Callable[[type[C]], type[C]]:
    """Register the fenced command a due deadline of ``kind`` becomes, run by ``application``."""

    def register(command_type: type[C]) -> type[C]:
        if kind in DEADLINE_COMMANDS:
            raise ValueError(f"deadline kind {kind!r} is already {DEADLINE_COMMANDS[kind].__name__}")
        DEADLINE_COMMANDS[kind] = command_type
        command_type.kind = kind
        command_type.application = application
        return command_type

    return register


def deadline_command(kind: str, subject: UUID, fence: int, at: datetime) -> FencedCommand | None:
    """The command a due deadline becomes; None for a kind this version does not know."""
    command_type = DEADLINE_COMMANDS.get(kind)
    return None if command_type is None else command_type(subject=subject, fence=fence, at=at)


@deadline("unsilence")
@dataclass(frozen=True)
class UnsilenceWhenDue(FencedCommand):
    pass


@deadline("heartbeat")
@dataclass(frozen=True)
class ExpireHeartbeat(FencedCommand):
    pass


KIND_UNSILENCE = UnsilenceWhenDue.kind
KIND_HEARTBEAT = ExpireHeartbeat.kind


class HeartbeatContext(Protocol):
    """What heartbeat expiry needs from ingest: an integration's settings and its templates."""

    templates: Evaluator

    def live_settings(self, integration_id: UUID) -> IntegrationSettings | None:
        """The integration's settings, or None when it was deleted."""


@handles(UnsilenceWhenDue)
def unsilence_when_due(uow: UnitOfWork, command: UnsilenceWhenDue, context: object = None) -> None:
    group = uow.get(command.subject)
    if isinstance(group, AlertGroup):
        group.unsilence_when_due(fence=command.fence, at=command.at)


@handles(ExpireHeartbeat)
def expire_heartbeat_when_due(uow: UnitOfWork, command: ExpireHeartbeat, context: HeartbeatContext) -> None:
    """Sends the expired alert once per fence, nothing when a ping came in meanwhile."""
    heartbeat = uow.get(command.subject)
    if not isinstance(heartbeat, Heartbeat):
        return
    settings = context.live_settings(heartbeat.integration_id)
    if settings is None:
        # Deleted since the deadline was set, and the deletion's own disarm is not (yet)
        # recorded: disarm now instead of raising an alert nothing could resolve.
        heartbeat.retire(at=command.at)
        return
    expire_heartbeat(uow, settings, command.subject, command.fence, command.at, context.templates)
