"""The escalation engine's decisions (pure): step outcomes, pauses, windows, rotations, bounds.

The unit of work is a dict of aggregates and the context a small table of people; the same
functions run against the real stores in tests/integration/test_escalation_runs.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from uuid import UUID, uuid4

import pytest

from domain.alert_group import ActionRefused, AlertGroup
from domain.paging import (
    FINISHED,
    PAUSED,
    SCHEDULED,
    STOPPED,
    UNSPECIFIED_STEP,
    WAIT_STEP_IS_NOT_CONFIGURED,
    ChainSnapshot,
    Escalation,
    PageResponders,
    Person,
    RunEscalationStep,
    next_window_start,
    page_responders,
    run_escalation_step,
    run_steps,
    start_escalation,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ALICE, BOB = Person(uuid4(), "alice"), Person(uuid4(), "bob")


class Store:
    def __init__(self):
        self.aggregates: dict[UUID, object] = {}

    def get(self, aggregate_id):
        return self.aggregates.get(aggregate_id)

    def add(self, aggregate):
        self.aggregates[aggregate.id] = aggregate


class Context:
    def __init__(self, steps: list[dict], alert_times: list[datetime] = ()):
        self.chain = ChainSnapshot(uuid4(), "Primary", tuple({"policy_id": uuid4(), **s} for s in steps))
        self.alert_times = list(alert_times)

    def chain_for(self, integration_id, route_id):
        return self.chain

    def maintenance_at(self, integration_id, at):
        return None

    def people(self, user_ids):
        known = {ALICE.id: ALICE, BOB.id: BOB}
        return [known[i] for i in user_ids if i in known]

    def team(self, team_id):
        return None

    def on_call(self, schedule_id, at):
        return None

    def alerts_since(self, group_id, since, at_most):
        return min(sum(1 for t in self.alert_times if t >= since), at_most)


def firing_group(store: Store) -> AlertGroup:
    group = AlertGroup(integration_id=uuid4(), route_id=uuid4(), distinction="d", generation=1, title="t",
                       source_link=None, template_revision=1, started_at=T0, is_demo=False)  # fmt: skip
    group.attach_alert(alert_id=uuid4(), received_at=T0, is_resolve_signal=False)
    store.add(group)
    return group


def kinds(escalation: Escalation) -> list[str]:
    return [type(e).__name__ for e in escalation.pending_events]


def notified(escalation: Escalation) -> list[str]:
    return [e.username for e in escalation.pending_events if isinstance(e, Escalation.NotificationRequested)]


def fire_due(store: Store, context: Context, escalation: Escalation, at: datetime) -> None:
    command = RunEscalationStep(subject=escalation.id, fence=escalation.fence, at=at)
    run_escalation_step(store, command, context)


def test_steps_run_until_a_wait_and_the_deadline_carries_a_fence_that_fires_once():
    store = Store()
    context = Context([{"type": "notify_persons", "persons_to_notify": [ALICE.id]}, {"type": "wait", "duration": 60},
                       {"type": "notify_persons", "persons_to_notify": [BOB.id, uuid4()], "important": True}])  # fmt: skip
    group = firing_group(store)
    escalation = start_escalation(store, group, context, "new alert group", T0)
    assert (escalation.state, escalation.due_at, escalation.next_index) == (SCHEDULED, T0 + timedelta(seconds=60), 2)
    assert notified(escalation) == ["alice"]
    fence = escalation.fence
    fire_due(store, context, escalation, T0 + timedelta(seconds=61))
    assert escalation.state == FINISHED and notified(escalation) == ["alice", "bob"]  # an unknown user: skipped
    important = [e.important for e in escalation.pending_events if isinstance(e, Escalation.NotificationRequested)]
    assert important == [False, True]
    before = len(escalation.pending_events)
    run_escalation_step(store, RunEscalationStep(subject=escalation.id, fence=fence, at=T0), context)
    assert len(escalation.pending_events) == before  # the same deadline fired again changes nothing


def test_a_step_never_runs_for_a_group_acknowledged_meanwhile():
    store = Store()
    context = Context([{"type": "wait", "duration": 60}, {"type": "notify_persons", "persons_to_notify": [ALICE.id]}])
    group = firing_group(store)
    escalation = start_escalation(store, group, context, "new alert group", T0)
    group.acknowledge(by="ann", at=T0 + timedelta(seconds=10))  # its reaction has not run yet
    fire_due(store, context, escalation, T0 + timedelta(seconds=60))
    assert escalation.state == STOPPED and notified(escalation) == []
    assert kinds(escalation)[-1] == "Stopped"


def test_repeat_goes_back_five_times_then_does_nothing():
    store = Store()
    context = Context([{"type": "notify_persons", "persons_to_notify": [ALICE.id]}, {"type": "repeat_escalation"}])
    escalation = start_escalation(store, firing_group(store), context, "new alert group", T0)
    at = T0
    while escalation.state == SCHEDULED:
        assert escalation.due_at == at + timedelta(seconds=5)  # OnCall's pause between passes
        at = escalation.due_at
        fire_due(store, context, escalation, at)
    assert escalation.state == FINISHED and escalation.repeats == 5 and notified(escalation) == ["alice"] * 6


def test_unconfigured_and_unknown_steps_are_recorded_failures_and_escalation_goes_on():
    store = Store()
    context = Context([{"type": "no_such_step"}, {"type": "wait"}, {"type": "notify_persons", "persons_to_notify": [BOB.id]}])
    escalation = start_escalation(store, firing_group(store), context, "new alert group", T0)
    codes = [e.error_code for e in escalation.pending_events if isinstance(e, Escalation.StepFailed)]
    assert codes == [UNSPECIFIED_STEP, WAIT_STEP_IS_NOT_CONFIGURED]
    assert escalation.due_at == T0 + timedelta(minutes=5)  # OnCall's default delay


def test_notify_if_num_alerts_in_window_pauses_until_enough_alerts_came():
    store = Store()
    context = Context([{"type": "notify_if_num_alerts_in_window", "num_alerts_in_window": 2, "num_minutes_in_window": 5},
                       {"type": "notify_persons", "persons_to_notify": [ALICE.id]}], alert_times=[T0])  # fmt: skip
    group = firing_group(store)
    escalation = start_escalation(store, group, context, "new alert group", T0)
    assert escalation.state == PAUSED and notified(escalation) == []
    # Alerts 6 minutes apart never make three within 5 minutes.
    late = T0 + timedelta(minutes=6)
    group.attach_alert(alert_id=uuid4(), received_at=late, is_resolve_signal=False)
    context.alert_times.append(late)
    run_steps(store, escalation, group, context, late)
    assert escalation.state == PAUSED
    for seconds in (10, 20):
        moment = late + timedelta(seconds=seconds)
        group.attach_alert(alert_id=uuid4(), received_at=moment, is_resolve_signal=False)
        context.alert_times.append(moment)
        run_steps(store, escalation, group, context, moment)
    assert escalation.state == FINISHED and notified(escalation) == ["alice"]


def test_notify_if_time_window_wraps_past_midnight_and_waits_for_the_next_start():
    start, end = time(22, 0), time(6, 0)
    assert next_window_start(start, end, datetime(2026, 12, 1, 23, 0, tzinfo=UTC)) is None
    assert next_window_start(start, end, datetime(2026, 12, 2, 5, 59, tzinfo=UTC)) is None
    assert next_window_start(start, end, datetime(2026, 12, 2, 12, 0, tzinfo=UTC)) == datetime(2026, 12, 2, 22, 0, tzinfo=UTC)
    assert next_window_start(time(9, 0), time(17, 0), datetime(2026, 12, 2, 18, 0, tzinfo=UTC)) == datetime(
        2026, 12, 3, 9, 0, tzinfo=UTC
    )


def test_notify_person_next_each_time_rotates_across_groups_in_username_order():
    store = Store()
    context = Context([{"type": "notify_person_next_each_time", "persons_to_notify_next_each_time": [BOB.id, ALICE.id]}])
    picked = []
    for _ in range(3):
        escalation = start_escalation(store, firing_group(store), context, "new alert group", T0)
        picked += notified(escalation)
    assert picked == ["alice", "bob", "alice"]


def test_paging_responders_notifies_them_whatever_the_state_but_not_into_a_resolved_group():
    store = Store()
    group = firing_group(store)
    group.acknowledge(by="ann", at=T0)
    page_responders(store, PageResponders(group_id=group.id, responders=((ALICE, True),), by="ann", at=T0))
    escalation = store.get(Escalation.create_id(group.id))
    assert kinds(escalation) == ["Opened", "ResponderPaged", "NotificationRequested"] and notified(escalation) == ["alice"]
    group.resolve(by="ann", at=T0)
    with pytest.raises(ActionRefused, match="Cannot add responders for a resolved alert group"):
        page_responders(store, PageResponders(group_id=group.id, responders=((BOB, False),), by="ann", at=T0))
