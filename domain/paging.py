"""Running escalation chains and paging people: the reacting side of ``domain.escalation``.

One ``Escalation`` aggregate per alert group, in the alerting store beside its group. When
escalation starts, the chain's steps are frozen into the ``Started`` event (editing the chain
changes only escalations that start later); whom a step names (users on call, team members) is
resolved when the step runs, as OnCall does. Every executed step is an event and a timeline
entry; a step that notifies people records one ``NotificationRequested`` per person, which the
delivery side consumes.

Steps run back to back until one asks for later: a ``wait`` (its duration), a
``notify_if_time_from_to`` outside its window (the window's next start), ``repeat_escalation``
(``REPEAT_DELAY`` later, so a chain without waits cannot page six times in one instant) or a
paused ``notify_if_num_alerts_in_window`` (re-run by the group's next alert). "Later" is a
recorded deadline (``Scheduled``, with a fence) that the ticker turns into the fenced command
``RunEscalationStep``: firing it twice runs the step once.

Acknowledge, resolve and silence stop an escalation; unacknowledge, unresolve and unsilence
start a fresh one from the first step after ``RESTART_DELAY`` (OnCall's 10 s countdown). These
reactions are ``ESCALATION``'s policies, run by a tracked process that follows the alerting
store and writes back into it (``workers.escalation``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event

from domain.alert_group import SOURCE_LAST_STEP, ActionRefused, AlertGroup
from domain.commands import (
    ON_PAGING_STOPPED,
    Command,
    FencedCommand,
    UnitOfWork,
    close_slot_if_resolved,
    deadline,
    handles,
)
from domain.escalation import MAX_REPEATS
from domain.policies import Policies

REPEAT_DELAY = timedelta(seconds=5)  # OnCall's NEXT_ESCALATION_DELAY
RESTART_DELAY = timedelta(seconds=10)  # OnCall's countdown for a restarted escalation
UNCONFIGURED_WAIT = timedelta(minutes=5)  # OnCall's delay for a wait step without a duration

# Escalation states between transactions.
SCHEDULED = "scheduled"  # a step is due at ``due_at``
PAUSED = "paused"  # waiting for more alerts (notify_if_num_alerts_in_window)
STOPPED = "stopped"  # by acknowledge, resolve or silence
FINISHED = "finished"  # no steps left
IDLE = "idle"  # never started (the group was only paged by hand)

# OnCall's escalation error codes (AlertGroupLogRecord.ERROR_ESCALATION_*), those these steps use.
NOTIFY_QUEUE_NO_RECIPIENTS = 1
NOTIFY_MULTIPLE_NO_RECIPIENTS = 2
SCHEDULE_DOES_NOT_EXIST = 3
SCHEDULE_NOT_SELECTED = 4
ICAL_NO_VALID_USERS = 6
WAIT_STEP_IS_NOT_CONFIGURED = 8
NOTIFY_IF_TIME_IS_NOT_CONFIGURED = 9
UNSPECIFIED_STEP = 10
TRIGGER_WEBHOOK_STEP_IS_NOT_CONFIGURED = 14
NOTIFY_IF_NUM_ALERTS_IN_WINDOW_STEP_IS_NOT_CONFIGURED = 16
NOTIFY_TEAM_MEMBERS_STEP_IS_NOT_CONFIGURED = 18
TEAM_HAS_NO_MEMBERS = 1001  # Tocsin's: the team exists but nobody in it may be notified

# Why an escalation (re)started, as its timeline entry says.
REASON_NEW_GROUP = "new alert group"
REASON_UNACKNOWLEDGED = "unacknowledged"
REASON_UNRESOLVED = "unresolved"
REASON_UNSILENCED = "unsilenced"
# Unsilences that restart escalation; the others come with an acknowledge or a resolve.
RESTARTING_UNSILENCES = frozenset({"Unsilence button", "auto unsilence"})


@dataclass(frozen=True)
class Person:
    """Someone who may be notified (an admin or editor who was not deleted)."""

    id: UUID
    username: str


@dataclass(frozen=True)
class ChainSnapshot:
    chain_id: UUID
    name: str
    steps: tuple[dict, ...]  # the policies' steps in order, each with its ``policy_id``


class PagingContext(Protocol):
    """What escalation needs to know beyond the alerting store (configuration, read models)."""

    def chain_for(self, integration_id: UUID, route_id: UUID) -> ChainSnapshot | None:
        """The chain the route takes now; None: no chain, or the route or chain is gone."""

    def maintenance_at(self, integration_id: UUID, at: datetime) -> str | None:
        """"debug" or "maintenance" while the integration is in that mode, else None."""

    def people(self, user_ids: Sequence[UUID]) -> list[Person]:
        """Those of ``user_ids`` who may be notified, in the order given."""

    def team(self, team_id: UUID) -> tuple[str, list[Person]] | None:
        """The team's name and the members who may be notified; None when it does not exist."""

    def on_call(self, schedule_id: UUID, at: datetime) -> tuple[str, list[Person]] | None:
        """The schedule's name and who is on call at ``at``; None when it does not exist."""

    def alerts_since(self, group_id: UUID, since: datetime, at_most: int) -> int:
        """How many of the group's alerts were received at or after ``since`` (counting stops
        at ``at_most``)."""


def _people(persons: Iterable[Person]) -> list[dict]:
    return [{"id": person.id, "username": person.username} for person in persons]


class Escalation(Aggregate):
    @event("Opened")
    def __init__(self, group_id: UUID, integration_id: UUID):
        self.group_id = group_id
        self.integration_id = integration_id
        self.run = 0
        self.chain_id: UUID | None = None
        self.chain_name: str | None = None
        self.steps: list[dict] = []
        self.next_index = 0
        self.repeats = 0
        self.state = IDLE
        self.due_at: datetime | None = None
        self.fence = 0  # a deadline carries the fence it was set with

    @staticmethod
    def create_id(group_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/escalations/{group_id}")

    @property
    def active(self) -> bool:
        return self.state in (SCHEDULED, PAUSED)

    @event("Started")
    def _started(
        self, group_id: UUID, run: int, chain_id: UUID, chain_name: str, steps: list[dict], reason: str, at: datetime
    ) -> None:
        self.run = run
        self.chain_id = chain_id
        self.chain_name = chain_name
        self.steps = [dict(step) for step in steps]
        self.next_index = 0
        self.repeats = 0
        self.state = SCHEDULED
        self.due_at = at
        self.fence += 1

    def start(self, chain: ChainSnapshot, reason: str, at: datetime) -> None:
        self._started(
            group_id=self.group_id, run=self.run + 1, chain_id=chain.chain_id, chain_name=chain.name,
            steps=list(chain.steps), reason=reason, at=at,
        )  # fmt: skip

    @event("StepTriggered")
    def step_triggered(self, group_id: UUID, run: int, index: int, step: dict, details: dict, at: datetime) -> None:
        self.next_index = index + 1
        if step["type"] == "repeat_escalation":
            self.repeats += 1

    @event("StepFailed")
    def step_failed(self, group_id: UUID, run: int, index: int, step: dict, error_code: int, details: dict,
                    at: datetime) -> None:  # fmt: skip
        self.next_index = index + 1

    @event("NotificationRequested")
    def notification_requested(
        self, group_id: UUID, user_id: UUID, username: str, important: bool, reason: str, at: datetime,
        direct: bool = False,
    ) -> None:
        """The delivery side's input: one per person and request. ``direct``: paged by hand, so
        notified whatever the group's state (but resolved), as OnCall's ``notify_anyway``."""

    @event("ResponderPaged")
    def _responder_paged(self, group_id: UUID, user_id: UUID, username: str, important: bool, by: str | None,
                         at: datetime) -> None:  # fmt: skip
        pass

    def page(self, person: Person, important: bool, by: str | None, at: datetime) -> None:
        """Direct paging: the person is notified whatever the group's state (as OnCall's
        ``notify_anyway``)."""
        self._responder_paged(group_id=self.group_id, user_id=person.id, username=person.username,
                              important=important, by=by, at=at)  # fmt: skip
        reason = f"{by or 'API'} paged user {person.username}"
        self.notification_requested(group_id=self.group_id, user_id=person.id, username=person.username,
                                    important=important, reason=reason, at=at, direct=True)  # fmt: skip

    @event("Scheduled")
    def _scheduled(self, index: int, due_at: datetime, fence: int) -> None:
        self.next_index = index
        self.state = SCHEDULED
        self.due_at = due_at
        self.fence = fence

    def schedule(self, index: int, due_at: datetime) -> None:
        """Run step ``index`` at ``due_at`` (a deadline with a new fence)."""
        self._scheduled(index=index, due_at=due_at, fence=self.fence + 1)

    @event("Paused")
    def pause(self, index: int) -> None:
        self.next_index = index
        self.state = PAUSED
        self.due_at = None
        self.fence += 1

    @event("Stopped")
    def _stopped(self, group_id: UUID, reason: str, at: datetime) -> None:
        self.state = STOPPED
        self.due_at = None
        self.fence += 1

    def stop(self, reason: str, at: datetime) -> bool:
        if not self.active:
            return False
        self._stopped(group_id=self.group_id, reason=reason, at=at)
        return True

    @event("Finished")
    def _finished(self, group_id: UUID, at: datetime) -> None:
        self.state = FINISHED
        self.due_at = None
        self.fence += 1

    def finish(self, at: datetime) -> None:
        self._finished(group_id=self.group_id, at=at)


class PolicyRotation(Aggregate):
    """Whom ``notify_person_next_each_time`` notified last, per policy and shared by every alert
    group (as OnCall keeps ``last_notified_user`` on the live policy)."""

    @event("Created")
    def __init__(self, policy_id: UUID):
        self.policy_id = policy_id
        self.last_user_id: UUID | None = None

    @staticmethod
    def create_id(policy_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/policy-rotations/{policy_id}")

    @event("Advanced")
    def advance(self, user_id: UUID) -> None:
        self.last_user_id = user_id


# --- running steps ------------------------------------------------------------------------------


def stop_reason(group: AlertGroup) -> str | None:
    """Why escalation must not go on for the group as it is now."""
    if group.resolved:
        return "resolved"
    if group.acknowledged:
        return "acknowledged"
    if group.silenced:
        return "silenced"
    return None


class _Run:
    """One step's outcome: go on at once, go on later, or pause."""

    def __init__(self, next_index: int | None = None, due_at: datetime | None = None, pause: bool = False):
        self.next_index = next_index
        self.due_at = due_at
        self.pause = pause


GO_ON = _Run()


def run_steps(uow: UnitOfWork, escalation: Escalation, group: AlertGroup, context: PagingContext, at: datetime) -> None:
    """Run the escalation's steps from its next one until a step asks for later or none is left.

    The group's state is checked before every step: a run never notifies for an acknowledged,
    resolved or silenced group, however late the reaction to that change comes.
    """
    for _ in range(len(escalation.steps) + 1):
        reason = stop_reason(group)
        if reason is not None:
            escalation.stop(reason, at)
            return
        index = escalation.next_index
        if index >= len(escalation.steps):
            escalation.finish(at)
            return
        step = escalation.steps[index]
        runner = STEP_RUNNERS.get(step.get("type"))
        if runner is None:
            escalation.step_failed(group_id=group.id, run=escalation.run, index=index, step=step,
                                   error_code=UNSPECIFIED_STEP, details={}, at=at)  # fmt: skip
            continue
        outcome = runner(uow, escalation, group, index, step, context, at)
        if outcome.pause:
            escalation.pause(index)
            return
        if outcome.due_at is not None:
            escalation.schedule(index if outcome.next_index is None else outcome.next_index, outcome.due_at)
            return
    escalation.finish(at)  # not reached: every step moves the index on or returns


def _triggered(escalation: Escalation, group: AlertGroup, index: int, step: dict, at: datetime, **details) -> None:
    escalation.step_triggered(group_id=group.id, run=escalation.run, index=index, step=step, details=details, at=at)


def _failed(escalation: Escalation, group: AlertGroup, index: int, step: dict, code: int, at: datetime,
            **details) -> _Run:  # fmt: skip
    escalation.step_failed(group_id=group.id, run=escalation.run, index=index, step=step, error_code=code,
                           details=details, at=at)  # fmt: skip
    return GO_ON


def _notify(escalation: Escalation, group: AlertGroup, people: list[Person], important: bool, reason: str,
            at: datetime) -> None:  # fmt: skip
    for person in people:
        escalation.notification_requested(group_id=group.id, user_id=person.id, username=person.username,
                                          important=important, reason=reason, at=at)  # fmt: skip


def _wait(uow, escalation, group, index, step, context, at) -> _Run:
    duration = step.get("duration")
    if not duration:
        _failed(escalation, group, index, step, WAIT_STEP_IS_NOT_CONFIGURED, at)
        return _Run(next_index=index + 1, due_at=at + UNCONFIGURED_WAIT)
    _triggered(escalation, group, index, step, at, duration=duration)
    return _Run(next_index=index + 1, due_at=at + timedelta(seconds=duration))


def _notify_persons(uow, escalation, group, index, step, context, at) -> _Run:
    people = context.people(step.get("persons_to_notify") or [])
    if not people:
        return _failed(escalation, group, index, step, NOTIFY_MULTIPLE_NO_RECIPIENTS, at)
    _triggered(escalation, group, index, step, at, users=_people(people))
    _notify(escalation, group, people, bool(step.get("important")), "user is in the escalation step", at)
    return GO_ON


def _notify_person_next_each_time(uow, escalation, group, index, step, context, at) -> _Run:
    people = sorted(context.people(step.get("persons_to_notify_next_each_time") or []),
                    key=lambda person: (person.username, str(person.id)))  # OnCall's order  # fmt: skip
    if not people:
        return _failed(escalation, group, index, step, NOTIFY_QUEUE_NO_RECIPIENTS, at)
    rotation_id = PolicyRotation.create_id(step["policy_id"])
    rotation = uow.get(rotation_id)
    if rotation is None:
        rotation = PolicyRotation(policy_id=step["policy_id"])
        uow.add(rotation)
    ids = [person.id for person in people]
    after = ids.index(rotation.last_user_id) + 1 if rotation.last_user_id in ids else 0
    person = people[after % len(people)]
    rotation.advance(user_id=person.id)
    _triggered(escalation, group, index, step, at, users=_people([person]))
    _notify(escalation, group, [person], bool(step.get("important")), "user is next in the escalation step's queue", at)
    return GO_ON


def _notify_team_members(uow, escalation, group, index, step, context, at) -> _Run:
    team = context.team(step["team_to_notify"]) if step.get("team_to_notify") else None
    if team is None:
        return _failed(escalation, group, index, step, NOTIFY_TEAM_MEMBERS_STEP_IS_NOT_CONFIGURED, at)
    name, people = team
    if not people:
        return _failed(escalation, group, index, step, TEAM_HAS_NO_MEMBERS, at, team=name)
    _triggered(escalation, group, index, step, at, team=name, users=_people(people))
    _notify(escalation, group, people, bool(step.get("important")), f"user belongs to team {name}", at)
    return GO_ON


def _notify_on_call_from_schedule(uow, escalation, group, index, step, context, at) -> _Run:
    schedule_id = step.get("notify_on_call_from_schedule")
    if not schedule_id:
        return _failed(escalation, group, index, step, SCHEDULE_NOT_SELECTED, at)
    found = context.on_call(schedule_id, at)
    if found is None:
        return _failed(escalation, group, index, step, SCHEDULE_DOES_NOT_EXIST, at, schedule_id=schedule_id)
    name, people = found
    if not people:
        return _failed(escalation, group, index, step, ICAL_NO_VALID_USERS, at, schedule_id=schedule_id,
                       schedule_name=name)  # fmt: skip
    _triggered(escalation, group, index, step, at, schedule_id=schedule_id, schedule_name=name, users=_people(people))
    reason = f"user is on duty by schedule ({name}) defined in iCal"
    _notify(escalation, group, people, bool(step.get("important")), reason, at)
    return GO_ON


def _trigger_webhook(uow, escalation, group, index, step, context, at) -> _Run:
    if not step.get("action_to_trigger"):
        return _failed(escalation, group, index, step, TRIGGER_WEBHOOK_STEP_IS_NOT_CONFIGURED, at)
    _triggered(escalation, group, index, step, at, webhook_id=step["action_to_trigger"])
    return GO_ON


def _resolve(uow, escalation, group, index, step, context, at) -> _Run:
    _triggered(escalation, group, index, step, at)
    if group.resolve_automatically(SOURCE_LAST_STEP, at):
        close_slot_if_resolved(uow, group)  # its next alert opens a new group
    return GO_ON  # the next turn of the loop sees the group resolved and stops


def _repeat_escalation(uow, escalation, group, index, step, context, at) -> _Run:
    if escalation.repeats >= MAX_REPEATS:
        return GO_ON  # OnCall: after the last repeat the step does nothing
    _triggered(escalation, group, index, step, at, repeat=escalation.repeats + 1)
    return _Run(next_index=0, due_at=at + REPEAT_DELAY)


def _parse_utc_time(text: str | None) -> time | None:
    try:
        return time.fromisoformat(text.rstrip("Z")) if text else None
    except ValueError:
        return None


def next_window_start(start: time, end: time, at: datetime) -> datetime | None:
    """None when ``at`` is in the daily UTC window [start, end] (which may wrap past midnight),
    else when the window next starts."""
    now = at.astimezone(UTC)
    moment = now.time().replace(tzinfo=None)
    inside = start <= moment <= end if start <= end else (moment >= start or moment <= end)
    if inside:
        return None
    begins = datetime.combine(now.date(), start, tzinfo=UTC)
    return begins if begins > now else begins + timedelta(days=1)


def _notify_if_time_from_to(uow, escalation, group, index, step, context, at) -> _Run:
    start = _parse_utc_time(step.get("notify_if_time_from"))
    end = _parse_utc_time(step.get("notify_if_time_to"))
    if start is None or end is None:
        return _failed(escalation, group, index, step, NOTIFY_IF_TIME_IS_NOT_CONFIGURED, at)
    resume_at = next_window_start(start, end, at)
    _triggered(escalation, group, index, step, at, eta=resume_at)
    if resume_at is None:
        return GO_ON
    return _Run(next_index=index + 1, due_at=resume_at)  # OnCall does not check the window again


def _notify_if_num_alerts_in_window(uow, escalation, group, index, step, context, at) -> _Run:
    most, minutes = step.get("num_alerts_in_window"), step.get("num_minutes_in_window")
    if not most or not minutes:
        return _failed(escalation, group, index, step, NOTIFY_IF_NUM_ALERTS_IN_WINDOW_STEP_IS_NOT_CONFIGURED, at)
    last = getattr(group, "last_alert_at", None) or at
    count = context.alerts_since(group.id, last - timedelta(minutes=minutes), at_most=most + 1)
    paused = count <= most
    _triggered(escalation, group, index, step, at, alerts=count, paused=paused)
    return _Run(pause=True) if paused else GO_ON


STEP_RUNNERS: dict[str, Any] = {
    "wait": _wait,
    "notify_persons": _notify_persons,
    "notify_person_next_each_time": _notify_person_next_each_time,
    "notify_team_members": _notify_team_members,
    "notify_on_call_from_schedule": _notify_on_call_from_schedule,
    "trigger_webhook": _trigger_webhook,
    "resolve": _resolve,
    "repeat_escalation": _repeat_escalation,
    "notify_if_time_from_to": _notify_if_time_from_to,
    "notify_if_num_alerts_in_window": _notify_if_num_alerts_in_window,
}


def start_escalation(uow: UnitOfWork, group: AlertGroup, context: PagingContext, reason: str, at: datetime,
                     delay: timedelta | None = None) -> Escalation | None:  # fmt: skip
    """Snapshot the chain the group's route takes now and start at its first step (now, or after
    ``delay``). Nothing when the route has no chain or the integration is in maintenance; a
    running escalation of the group is replaced."""
    chain = context.chain_for(group.integration_id, group.route_id)
    if chain is None or context.maintenance_at(group.integration_id, at) is not None:
        return None
    escalation = _escalation_of(uow, group)
    escalation.start(chain, reason, at)
    if delay:
        escalation.schedule(0, at + delay)
    else:
        run_steps(uow, escalation, group, context, at)
    return escalation


def _escalation_of(uow: UnitOfWork, group: AlertGroup) -> Escalation:
    escalation = uow.get(Escalation.create_id(group.id))
    if escalation is None:
        escalation = Escalation(group_id=group.id, integration_id=group.integration_id)
        uow.add(escalation)
    return escalation


# --- the reactions: policies of the escalation process -------------------------------------------

ESCALATION = Policies()


@ESCALATION.policy(AlertGroup.Registered)
def escalate_new_group(uow: UnitOfWork, event: AlertGroup.Registered, context: PagingContext) -> None:
    if context.chain_for(event.integration_id, event.route_id) is None:
        return  # most groups of a busy integration without a chain: no read of the group
    # The escalation is looked up first, so its events are saved before the group's (a "resolve"
    # step's resolution comes after the step on the timeline).
    uow.get(Escalation.create_id(event.originator_id))
    group = uow.get(event.originator_id)
    if stop_reason(group) is None:  # acknowledged or resolved by its source meanwhile: nothing to do
        start_escalation(uow, group, context, REASON_NEW_GROUP, event.started_at)


def stop_with_group(uow: UnitOfWork, group: AlertGroup, at: datetime) -> None:
    """Stop the group's escalation in the transaction that acknowledges, resolves or silences it.

    A step run (the ticker's ``RunEscalationStep``, a policy of the escalation process) reads the
    group, then saves only the escalation: a change of the group committed in between would not
    conflict with it, and the step would notify after the acknowledgement. Writing the escalation
    here makes that save conflict on the escalation's version, and the step runs again on the
    changed group (and does nothing). A group without an escalation yet gets one that was never
    started, so an escalation the process is starting at this moment conflicts the same way.
    """
    escalation = uow.get(Escalation.create_id(group.id))
    if escalation is None:
        uow.add(Escalation(group_id=group.id, integration_id=group.integration_id))
    elif (reason := stop_reason(group)) is not None:
        escalation.stop(reason, at)


ON_PAGING_STOPPED.append(stop_with_group)


def _stop(uow: UnitOfWork, group_id: UUID, reason: str, at: datetime) -> None:
    escalation = uow.get(Escalation.create_id(group_id))
    if escalation is not None:
        escalation.stop(reason, at)


@ESCALATION.policy(AlertGroup.Acknowledged)
def stop_when_acknowledged(uow: UnitOfWork, event: AlertGroup.Acknowledged, context: PagingContext) -> None:
    _stop(uow, event.originator_id, "acknowledged", event.at)


@ESCALATION.policy(AlertGroup.Resolved)
def stop_when_resolved(uow: UnitOfWork, event: AlertGroup.Resolved, context: PagingContext) -> None:
    _stop(uow, event.originator_id, "resolved", event.at)


@ESCALATION.policy(AlertGroup.Silenced)
def stop_when_silenced(uow: UnitOfWork, event: AlertGroup.Silenced, context: PagingContext) -> None:
    # Silenced for a while: the timed unsilence restarts it (OnCall's behaviour).
    _stop(uow, event.originator_id, "silenced", event.at)


def _restart(uow: UnitOfWork, group_id: UUID, reason: str, context: PagingContext, at: datetime) -> None:
    group = uow.get(group_id)
    if isinstance(group, AlertGroup) and stop_reason(group) is None:
        start_escalation(uow, group, context, reason, at, delay=RESTART_DELAY)


@ESCALATION.policy(AlertGroup.Unacknowledged)
def restart_when_unacknowledged(uow: UnitOfWork, event: AlertGroup.Unacknowledged, context: PagingContext) -> None:
    _restart(uow, event.originator_id, REASON_UNACKNOWLEDGED, context, event.at)


@ESCALATION.policy(AlertGroup.Unresolved)
def restart_when_unresolved(uow: UnitOfWork, event: AlertGroup.Unresolved, context: PagingContext) -> None:
    _restart(uow, event.originator_id, REASON_UNRESOLVED, context, event.at)


@ESCALATION.policy(AlertGroup.Unsilenced)
def restart_when_unsilenced(uow: UnitOfWork, event: AlertGroup.Unsilenced, context: PagingContext) -> None:
    if event.reason in RESTARTING_UNSILENCES:
        _restart(uow, event.originator_id, REASON_UNSILENCED, context, event.at)


@ESCALATION.batch_policy(AlertGroup.AlertAttached)
def resume_paused(uow: Any, events: Sequence[AlertGroup.AlertAttached], context: PagingContext) -> None:
    """A new alert re-runs a paused ``notify_if_num_alerts_in_window`` step (as OnCall does)."""
    group_ids = {event.originator_id for event in events}
    uow.preload(Escalation.create_id(group_id) for group_id in group_ids)  # one read for the batch
    for group_id in group_ids:
        escalation = uow.get(Escalation.create_id(group_id))
        if escalation is not None and escalation.state == PAUSED:
            at = max(event.received_at for event in events if event.originator_id == group_id)
            run_steps(uow, escalation, uow.get(group_id), context, at)


# --- commands ------------------------------------------------------------------------------------


@deadline("escalation-step")
@dataclass(frozen=True)
class RunEscalationStep(FencedCommand):
    pass


@handles(RunEscalationStep)
def run_escalation_step(uow: UnitOfWork, command: RunEscalationStep, context: PagingContext) -> None:
    escalation = uow.get(command.subject)
    if not isinstance(escalation, Escalation) or escalation.state != SCHEDULED or escalation.fence != command.fence:
        return  # stopped, restarted or already run since the deadline was set
    run_steps(uow, escalation, uow.get(escalation.group_id), context, command.at)


@dataclass(frozen=True)
class PageResponders(Command):
    """Direct paging into an existing group: each person is notified (``important`` each)."""

    group_id: UUID
    responders: tuple[tuple[Person, bool], ...]
    by: str | None
    at: datetime


@handles(PageResponders)
def page_responders(uow: UnitOfWork, command: PageResponders, context: object = None) -> None:
    group = uow.get(command.group_id)
    if not isinstance(group, AlertGroup):
        raise AggregateNotFoundError(command.group_id)
    if group.resolved:
        raise ActionRefused("Cannot add responders for a resolved alert group")
    escalation = _escalation_of(uow, group)
    for person, important in command.responders:
        escalation.page(person, important, command.by, command.at)
