"""Notifying a person: their personal rules followed step by step, and each delivery attempt
recorded before and after it is sent (the outbox).

A ``NotificationRequested`` (an escalation step, or direct paging) starts a
``PersonalNotification``: the user's rules for that request (default or important, OnCall's
fallback of one email when there are none) are frozen into it and run like an escalation's
steps: ``notify_by_*`` requests a ``DeliveryAttempt`` and goes on, ``wait`` sets a fenced
deadline. Before every step the alert group's state is checked: an acknowledged, resolved or
silenced group stops the person's notifications (not for direct paging, which notifies anyway,
as OnCall's ``notify_anyway``).

A ``DeliveryAttempt`` is the unit a worker sends, exactly once: the worker first claims it
(``StartDelivery`` records ``Started`` with its claim; a second worker, or a redelivered job, finds
it started and sends nothing), then sends, then records the outcome. Whatever goes wrong in
between is caught by the attempt's check deadline: an attempt never started (its job was lost
with Redis, or its dispatcher died) is dispatched again; one started and never finished (its
worker died mid-send) is recorded as failed with an unknown outcome. A failure that may pass
(a timeout, a 5xx, an unknown outcome) requests a new attempt after a backoff, up to
``MAX_ATTEMPTS``; a permanent one (a refused address, no email address) does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.alert_group import AlertGroup
from domain.commands import Command, FencedCommand, UnitOfWork, deadline, handles
from domain.paging import ESCALATION, Escalation, stop_reason

NOT_STARTED_CHECK = timedelta(seconds=20)  # a dispatched attempt not started by then: dispatch again
UNFINISHED_CHECK = timedelta(seconds=60)  # a started attempt not finished by then: its worker died
MAX_ATTEMPTS = 4
BACKOFF = (timedelta(seconds=5), timedelta(seconds=30), timedelta(minutes=2))  # before attempts 2, 3, 4

# Delivery attempt states.
REQUESTED, STARTED, SENT, FAILED, CANCELLED = "requested", "started", "sent", "failed", "cancelled"
# Personal notification states between transactions.
WAITING, DONE, STOPPED = "waiting", "done", "stopped"

NOTIFY_BY = "notify_by_"
UNKNOWN_OUTCOME = "the outcome is unknown: the delivery stopped before it was recorded"
SKIPPED = "skipped"  # an outcome: nothing was to be sent (a webhook's trigger template said no)
NOT_TRIGGERED = "its trigger template did not fire"


class RulesContext(Protocol):
    def notification_steps(self, user_id: UUID, important: bool) -> list[dict]:
        """The user's rules for the list ``important`` names, as step dicts ({"type", "duration"})."""


class PersonalNotification(Aggregate):
    @event("Created")
    def __init__(self, group_id: UUID, user_id: UUID, username: str, important: bool, notify_anyway: bool,
                 reason: str, steps: list[dict], at: datetime):  # fmt: skip
        self.group_id = group_id
        self.user_id = user_id
        self.username = username
        self.important = important
        self.notify_anyway = notify_anyway
        self.steps = [dict(step) for step in steps]
        self.next_index = 0
        self.state = WAITING
        self.fence = 0

    @staticmethod
    def create_id(request_id: UUID, request_version: int) -> UUID:
        """One per notification request (the escalation's event), so a redone batch makes it once."""
        return uuid5(NAMESPACE_URL, f"/personal-notifications/{request_id}/{request_version}")

    @event("StepRan")
    def step_ran(self, index: int, step: dict, attempt_id: UUID | None) -> None:
        self.next_index = index + 1

    @event("Scheduled")
    def _scheduled(self, index: int, due_at: datetime, fence: int) -> None:
        self.next_index = index
        self.state = WAITING
        self.fence = fence

    def schedule(self, index: int, due_at: datetime) -> None:
        self._scheduled(index=index, due_at=due_at, fence=self.fence + 1)

    @event("Stopped")
    def _stopped(self, group_id: UUID, username: str, reason: str, at: datetime) -> None:
        self.state = STOPPED
        self.fence += 1

    def stop(self, reason: str, at: datetime) -> None:
        self._stopped(group_id=self.group_id, username=self.username, reason=reason, at=at)

    @event("Done")
    def done(self, at: datetime) -> None:
        self.state = DONE
        self.fence += 1


class DeliveryAttempt(Aggregate):
    """One try at one channel for one person; see the module docstring."""

    @event("Requested")
    def __init__(self, notification_id: UUID, index: int, group_id: UUID, user_id: UUID | None, username: str,
                 channel: str, number: int, notify_anyway: bool, due_at: datetime, check_at: datetime,
                 webhook: dict | None = None):  # fmt: skip
        self.notification_id = notification_id
        # An outgoing webhook's attempt ({"id", "name", "trigger", "event_at"}) has no person.
        self.webhook = webhook
        self.index = index  # the step of the person's rules
        self.group_id = group_id
        self.user_id = user_id
        self.username = username
        self.channel = channel
        self.number = number
        self.notify_anyway = notify_anyway
        self.due_at = due_at
        self.state = REQUESTED
        self.claim: UUID | None = None
        self.fence = 1  # the check deadline's

    @staticmethod
    def create_id(notification_id: UUID, index: int, number: int) -> UUID:
        return uuid5(NAMESPACE_URL, f"/delivery-attempts/{notification_id}/{index}/{number}")

    @event("Redispatched")
    def _redispatched(self, at: datetime, check_at: datetime, fence: int) -> None:
        self.fence = fence

    def redispatch(self, at: datetime) -> None:
        self._redispatched(at=at, check_at=at + NOT_STARTED_CHECK, fence=self.fence + 1)

    @event("Started")
    def _started(self, claim: UUID, at: datetime, check_at: datetime, fence: int) -> None:
        self.state = STARTED
        self.claim = claim
        self.fence = fence

    def start(self, claim: UUID, at: datetime) -> None:
        self._started(claim=claim, at=at, check_at=at + UNFINISHED_CHECK, fence=self.fence + 1)

    # The outcomes carry what the timeline says (whose notification, by which channel).

    @event("Sent")
    def _sent(self, group_id: UUID, username: str, channel: str, number: int, address: str, at: datetime,
              webhook: dict | None = None) -> None:  # fmt: skip
        self.state = SENT
        self.fence += 1

    def sent(self, address: str, at: datetime) -> None:
        self._sent(group_id=self.group_id, username=self.username, channel=self.channel, number=self.number,
                   address=address, at=at, webhook=self.webhook)  # fmt: skip

    @event("Failed")
    def _failed(self, group_id: UUID, username: str, channel: str, number: int, address: str | None, reason: str,
                permanent: bool, at: datetime, webhook: dict | None = None) -> None:  # fmt: skip
        self.state = FAILED
        self.fence += 1

    def failed(self, address: str | None, reason: str, permanent: bool, at: datetime) -> None:
        self._failed(group_id=self.group_id, username=self.username, channel=self.channel, number=self.number,
                     address=address, reason=reason, permanent=permanent, at=at, webhook=self.webhook)  # fmt: skip

    @event("Cancelled")
    def _cancelled(self, group_id: UUID, username: str, channel: str, reason: str, at: datetime,
                   webhook: dict | None = None) -> None:  # fmt: skip
        self.state = CANCELLED
        self.fence += 1

    def cancel(self, reason: str, at: datetime) -> None:
        self._cancelled(group_id=self.group_id, username=self.username, channel=self.channel, reason=reason, at=at,
                        webhook=self.webhook)  # fmt: skip


def request_attempt(uow: UnitOfWork, notification_id: UUID, index: int, number: int, group_id: UUID,
                    user_id: UUID | None, username: str, channel: str, notify_anyway: bool, due_at: datetime,
                    now: datetime, webhook: dict | None = None) -> DeliveryAttempt:  # fmt: skip
    """A new attempt, due at ``due_at``; checked when due (later) or ``NOT_STARTED_CHECK`` after."""
    check_at = due_at if due_at > now else now + NOT_STARTED_CHECK
    attempt = DeliveryAttempt._create(  # the library's way to create with a chosen id
        DeliveryAttempt.Requested, id=DeliveryAttempt.create_id(notification_id, index, number),
        notification_id=notification_id, index=index, group_id=group_id, user_id=user_id, username=username, channel=channel,
        number=number, notify_anyway=notify_anyway, due_at=due_at, check_at=check_at, webhook=webhook,
    )  # fmt: skip
    uow.add(attempt)
    return attempt


# --- running a person's rules ------------------------------------------------------------------------


def why_not_notify(group: AlertGroup | None, notify_anyway: bool) -> str | None:
    """Why a person is no longer to be notified about ``group``; None: go on. Paged by hand
    (``notify_anyway``), only a resolved group stops it."""
    if group is None:
        return "alert group was deleted"
    reason = stop_reason(group)
    if reason is None or (notify_anyway and reason != "resolved"):
        return None
    return f"alert group was {reason}"


def run_notification(uow: UnitOfWork, notification: PersonalNotification, at: datetime) -> None:
    """Run the person's steps from the next one until a wait or the end."""
    group = uow.get(notification.group_id)
    for _ in range(len(notification.steps) + 1):
        reason = why_not_notify(group, notification.notify_anyway)
        if reason is not None:
            notification.stop(reason, at)
            return
        index = notification.next_index
        if index >= len(notification.steps):
            notification.done(at)
            return
        step = notification.steps[index]
        if step["type"] == "wait":
            notification.step_ran(index=index, step=step, attempt_id=None)
            notification.schedule(index + 1, at + timedelta(seconds=step.get("duration") or 300))
            return
        channel = step["type"].removeprefix(NOTIFY_BY)
        attempt = request_attempt(uow, notification.id, index, 1, notification.group_id, notification.user_id,
                                  notification.username, channel, notification.notify_anyway, at, at)  # fmt: skip
        notification.step_ran(index=index, step=step, attempt_id=attempt.id)
    notification.done(at)


@ESCALATION.policy(Escalation.NotificationRequested)
def notify_person(uow: UnitOfWork, request: Escalation.NotificationRequested, context: RulesContext) -> None:
    notification_id = PersonalNotification.create_id(request.originator_id, request.originator_version)
    if uow.get(notification_id) is not None:
        return
    direct = getattr(request, "direct", False)
    notification = PersonalNotification._create(
        PersonalNotification.Created, id=notification_id, group_id=request.group_id, user_id=request.user_id,
        username=request.username, important=request.important, notify_anyway=direct, reason=request.reason,
        steps=context.notification_steps(request.user_id, request.important), at=request.at,
    )  # fmt: skip
    uow.add(notification)
    run_notification(uow, notification, request.at)


# --- deadlines and the workers' commands ----------------------------------------------------------


@deadline("notification-step")
@dataclass(frozen=True)
class RunNotificationStep(FencedCommand):
    pass


@handles(RunNotificationStep)
def run_notification_step(uow: UnitOfWork, command: RunNotificationStep, context: object = None) -> None:
    notification = uow.get(command.subject)
    if isinstance(notification, PersonalNotification) and notification.state == WAITING \
            and notification.fence == command.fence:  # fmt: skip
        run_notification(uow, notification, command.at)


@deadline("delivery-check")
@dataclass(frozen=True)
class CheckDelivery(FencedCommand):
    pass


@handles(CheckDelivery)
def check_delivery(uow: UnitOfWork, command: CheckDelivery, context: object = None) -> None:
    """Dispatch again an attempt that never started; fail one whose worker died mid-send."""
    attempt = uow.get(command.subject)
    if not isinstance(attempt, DeliveryAttempt) or attempt.fence != command.fence:
        return
    if attempt.state == REQUESTED:
        attempt.redispatch(at=command.at)
    elif attempt.state == STARTED:
        attempt.failed(address=None, reason=UNKNOWN_OUTCOME, permanent=False, at=command.at)
        _retry(uow, attempt, command.at)


@dataclass(frozen=True)
class StartDelivery(Command):
    attempt_id: UUID
    claim: UUID  # the worker's: only the worker whose claim was recorded sends
    at: datetime


@handles(StartDelivery)
def start_delivery(uow: UnitOfWork, command: StartDelivery, context: object = None) -> None:
    attempt = uow.get(command.attempt_id)
    if not isinstance(attempt, DeliveryAttempt) or attempt.state != REQUESTED:
        return  # started by another worker, finished or cancelled (an attempt due later is
        # dispatched only when due: by its check deadline, see ``workers.delivery.Dispatcher``)
    # A webhook's event has happened whatever the group's state is now: it is sent anyway.
    reason = None if attempt.webhook is not None else why_not_notify(uow.get(attempt.group_id), attempt.notify_anyway)
    if reason is not None:
        attempt.cancel(reason=reason, at=command.at)
        return
    attempt.start(claim=command.claim, at=command.at)


@dataclass(frozen=True)
class RecordDelivery(Command):
    attempt_id: UUID
    claim: UUID
    address: str | None  # as shown to people (masked)
    outcome: str  # "sent", "transient", "permanent" or "skipped"
    reason: str
    at: datetime


@handles(RecordDelivery)
def record_delivery(uow: UnitOfWork, command: RecordDelivery, context: object = None) -> None:
    attempt = uow.get(command.attempt_id)
    if not isinstance(attempt, DeliveryAttempt) or attempt.state != STARTED or attempt.claim != command.claim:
        return  # the check gave up on this worker meanwhile: its outcome was recorded as unknown
    if command.outcome == SENT:
        attempt.sent(address=command.address or "", at=command.at)
        return
    if command.outcome == SKIPPED:
        attempt.cancel(reason=command.reason, at=command.at)
        return
    permanent = command.outcome != "transient"
    attempt.failed(address=command.address, reason=command.reason, permanent=permanent, at=command.at)
    if not permanent:
        _retry(uow, attempt, command.at)


def _retry(uow: UnitOfWork, attempt: DeliveryAttempt, at: datetime) -> None:
    if attempt.number >= MAX_ATTEMPTS:
        return
    request_attempt(uow, attempt.notification_id, attempt.index, attempt.number + 1, attempt.group_id,
                    attempt.user_id, attempt.username, attempt.channel, attempt.notify_anyway,
                    at + BACKOFF[attempt.number - 1], at, webhook=attempt.webhook)  # fmt: skip


# --- outgoing webhooks: what fires them --------------------------------------------------------------

WEBHOOK_CHANNEL = "outgoing_webhook"
# The alert group events that fire webhooks, by OnCall's public trigger names.
GROUP_TRIGGERS: dict[type, str] = {
    AlertGroup.Registered: "alert group created",
    AlertGroup.Acknowledged: "acknowledge",
    AlertGroup.Resolved: "resolve",
    AlertGroup.Silenced: "silence",
    AlertGroup.Unsilenced: "unsilence",
    AlertGroup.Unresolved: "unresolve",
    AlertGroup.Unacknowledged: "unacknowledge",
}
ESCALATION_TRIGGER = "escalation"
PERSONAL_NOTIFICATION_TRIGGER = "personal notification"


class WebhooksContext(Protocol):
    def webhooks_for(self, trigger: str, integration_id: UUID | None) -> list[tuple[UUID, str]]:
        """The (id, name) of every webhook the event fires for the integration's groups (None:
        every webhook with the trigger, whatever its integration filter)."""

    def webhook_named_by(self, public_id: str, integration_id: UUID) -> tuple[UUID, str] | None:
        """The escalation step's webhook (by its public id), if it may fire for the integration."""


def _request_webhook(uow: UnitOfWork, group_id: UUID, webhook_id: UUID, name: str, trigger: str, event,
                     at: datetime, user: dict | None = None) -> None:  # fmt: skip
    # One per webhook and event, so a redone batch requests it once.
    key = uuid5(NAMESPACE_URL, f"/webhook-requests/{webhook_id}/{event.originator_id}/{event.originator_version}")
    if uow.get(DeliveryAttempt.create_id(key, 0, 1)) is not None:
        return
    request_attempt(uow, key, 0, 1, group_id, None, "", WEBHOOK_CHANNEL, True, at, at,
                    webhook={"id": webhook_id, "name": name, "trigger": trigger, "event_at": at, "user": user})  # fmt: skip


@ESCALATION.policy(*GROUP_TRIGGERS)
def fire_group_webhooks(uow: UnitOfWork, event, context: WebhooksContext) -> None:
    trigger = GROUP_TRIGGERS[type(event)]
    if trigger == "unsilence" and getattr(event, "reason", "") not in ("Unsilence button", "auto unsilence"):
        return  # the unsilence that comes with an acknowledge or a resolve: that one fires
    at = event.started_at if isinstance(event, AlertGroup.Registered) else event.at
    integration_id = getattr(event, "integration_id", None)
    if integration_id is None:
        if not context.webhooks_for(trigger, None):
            return  # no webhook at all has this trigger: the group need not be read
        group = uow.get(event.originator_id)
        integration_id = group.integration_id if isinstance(group, AlertGroup) else None
    for webhook_id, name in context.webhooks_for(trigger, integration_id):
        _request_webhook(uow, event.originator_id, webhook_id, name, trigger, event, at)


@ESCALATION.policy(Escalation.StepTriggered)
def fire_escalation_webhook(uow: UnitOfWork, event: Escalation.StepTriggered, context: WebhooksContext) -> None:
    if event.step.get("type") != "trigger_webhook":
        return
    group = uow.get(event.group_id)
    if not isinstance(group, AlertGroup):
        return
    found = context.webhook_named_by(event.details.get("webhook_id") or "", group.integration_id)
    if found is not None:
        _request_webhook(uow, event.group_id, found[0], found[1], ESCALATION_TRIGGER, event, event.at)


@ESCALATION.policy(PersonalNotification.Created)
def fire_personal_notification_webhooks(uow: UnitOfWork, event: PersonalNotification.Created,
                                        context: WebhooksContext) -> None:  # fmt: skip
    if not context.webhooks_for(PERSONAL_NOTIFICATION_TRIGGER, None):
        return
    group = uow.get(event.group_id)
    if not isinstance(group, AlertGroup):
        return
    user = {"id": event.user_id, "username": event.username}
    for webhook_id, name in context.webhooks_for(PERSONAL_NOTIFICATION_TRIGGER, group.integration_id):
        _request_webhook(uow, event.group_id, webhook_id, name, PERSONAL_NOTIFICATION_TRIGGER, event, event.at, user)
