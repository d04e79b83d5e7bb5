"""Delivery's decisions (pure): a person's steps against the group's state, the claim that makes
an attempt sent once, retries and their bound, and the checks that recover lost attempts."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from domain.delivery import (
    BACKOFF,
    CANCELLED,
    FAILED,
    MAX_ATTEMPTS,
    NOT_STARTED_CHECK,
    REQUESTED,
    SENT,
    STARTED,
    UNKNOWN_OUTCOME,
    CheckDelivery,
    DeliveryAttempt,
    PersonalNotification,
    RecordDelivery,
    RunNotificationStep,
    StartDelivery,
    check_delivery,
    notify_person,
    record_delivery,
    run_notification_step,
    start_delivery,
)
from domain.paging import Escalation
from tests.unit.test_paging import ALICE, T0, Store, firing_group


class Rules:
    def __init__(self, steps: list[dict]):
        self.steps = steps

    def notification_steps(self, user_id, important):
        return self.steps


def request(store: Store, group, *, direct: bool = False) -> Escalation:
    escalation = Escalation(group_id=group.id, integration_id=group.integration_id)
    store.add(escalation)
    if direct:
        escalation.page(ALICE, important=False, by="ann", at=T0)
    else:
        escalation.notification_requested(group_id=group.id, user_id=ALICE.id, username=ALICE.username,
                                          important=False, reason="user is in the escalation step", at=T0)  # fmt: skip
    return escalation


def attempts(store: Store) -> list[DeliveryAttempt]:
    return [a for a in store.aggregates.values() if isinstance(a, DeliveryAttempt)]


def notified(store: Store, escalation: Escalation, rules: Rules) -> PersonalNotification:
    event = next(e for e in escalation.collect_events() if isinstance(e, Escalation.NotificationRequested))
    notify_person(store, event, rules)
    return next(a for a in store.aggregates.values() if isinstance(a, PersonalNotification))


def test_a_persons_steps_stop_at_an_acknowledged_group_but_direct_paging_notifies_anyway():
    rules = Rules([{"type": "notify_by_email"}, {"type": "wait", "duration": 60}, {"type": "notify_by_sms"}])
    store = Store()
    group = firing_group(store)
    notification = notified(store, request(store, group), rules)
    assert [a.channel for a in attempts(store)] == ["email"] and notification.next_index == 2
    group.acknowledge(by="ann", at=T0)
    run_notification_step(store, RunNotificationStep(subject=notification.id, fence=notification.fence, at=T0), None)
    assert notification.state == "stopped" and len(attempts(store)) == 1

    paged = Store()
    acknowledged = firing_group(paged)
    acknowledged.acknowledge(by="ann", at=T0)
    notified(paged, request(paged, acknowledged, direct=True), Rules([{"type": "notify_by_email"}]))
    [attempt] = attempts(paged)
    start_delivery(paged, StartDelivery(attempt_id=attempt.id, claim=uuid4(), at=T0))
    assert attempt.state == STARTED  # paged by hand: notified although acknowledged


def test_only_the_claiming_worker_sends_and_a_transient_failure_is_tried_again_a_bounded_number_of_times():
    store = Store()
    group = firing_group(store)
    notified(store, request(store, group), Rules([{"type": "notify_by_webhook"}]))
    [attempt] = attempts(store)
    first, second = uuid4(), uuid4()
    start_delivery(store, StartDelivery(attempt_id=attempt.id, claim=first, at=T0))
    start_delivery(store, StartDelivery(attempt_id=attempt.id, claim=second, at=T0))  # the job queued twice
    assert attempt.claim == first
    record_delivery(store, RecordDelivery(attempt_id=attempt.id, claim=second, address=None, outcome=SENT,
                                          reason="", at=T0))  # fmt: skip
    assert attempt.state == STARTED  # not the claimant: its outcome is not taken
    at = T0
    for number in range(1, MAX_ATTEMPTS + 1):
        current = next(a for a in attempts(store) if a.number == number)
        if current.state == REQUESTED:
            claim = uuid4()
            start_delivery(store, StartDelivery(attempt_id=current.id, claim=claim, at=at))
        else:
            claim = first
        record_delivery(store, RecordDelivery(attempt_id=current.id, claim=claim, address="x", outcome="transient",
                                              reason="HTTP 503", at=at))  # fmt: skip
        assert current.state == FAILED
        if number < MAX_ATTEMPTS:
            following = next(a for a in attempts(store) if a.number == number + 1)
            assert following.due_at == at + BACKOFF[number - 1]
            at = following.due_at
    assert len(attempts(store)) == MAX_ATTEMPTS  # the last failure asks for no more


def test_a_permanent_failure_is_not_tried_again_and_an_acknowledged_group_cancels_a_queued_attempt():
    store = Store()
    group = firing_group(store)
    notified(store, request(store, group), Rules([{"type": "notify_by_email"}, {"type": "notify_by_sms"}]))
    email, sms = sorted(attempts(store), key=lambda a: a.index)
    claim = uuid4()
    start_delivery(store, StartDelivery(attempt_id=email.id, claim=claim, at=T0))
    record_delivery(store, RecordDelivery(attempt_id=email.id, claim=claim, address=None, outcome="permanent",
                                          reason="alice has no email address", at=T0))  # fmt: skip
    assert email.state == FAILED and len(attempts(store)) == 2
    group.acknowledge(by="ann", at=T0)
    start_delivery(store, StartDelivery(attempt_id=sms.id, claim=uuid4(), at=T0))
    assert sms.state == CANCELLED


def test_the_check_dispatches_an_attempt_never_started_and_fails_one_whose_worker_died():
    store = Store()
    group = firing_group(store)
    notified(store, request(store, group), Rules([{"type": "notify_by_email"}]))
    [attempt] = attempts(store)
    check_delivery(store, CheckDelivery(subject=attempt.id, fence=attempt.fence, at=T0 + NOT_STARTED_CHECK))
    assert attempt.state == REQUESTED and type(attempt.pending_events[-1]).__name__ == "Redispatched"
    start_delivery(store, StartDelivery(attempt_id=attempt.id, claim=uuid4(), at=T0))
    stale_fence = attempt.fence - 1
    check_delivery(store, CheckDelivery(subject=attempt.id, fence=stale_fence, at=T0))
    assert attempt.state == STARTED  # a check set before the start does nothing
    check_delivery(store, CheckDelivery(subject=attempt.id, fence=attempt.fence, at=T0 + timedelta(minutes=1)))
    assert attempt.state == FAILED and attempt.pending_events[-1].reason == UNKNOWN_OUTCOME
    assert [a.number for a in attempts(store)] == [1, 2]  # tried again, as a new attempt


def test_a_webhook_is_sent_whatever_the_groups_state_since_its_event_has_happened():
    from domain.delivery import WEBHOOK_CHANNEL, request_attempt

    store = Store()
    group = firing_group(store)
    group.resolve(by="ann", at=T0)  # a "resolve" webhook is requested once the group is resolved
    attempt = request_attempt(store, uuid4(), 0, 1, group.id, None, "", WEBHOOK_CHANNEL, True, T0, T0,
                              webhook={"id": uuid4(), "name": "Tickets", "trigger": "resolve", "event_at": T0})  # fmt: skip
    start_delivery(store, StartDelivery(attempt_id=attempt.id, claim=uuid4(), at=T0))
    assert attempt.state == STARTED
