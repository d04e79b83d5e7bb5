"""Alert group lifecycle rules, driven through commands on the aggregate (no storage)."""

from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from domain.alert_group import ActionRefused, AlertGroup, State

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def new_group() -> AlertGroup:
    return AlertGroup(
        integration_id=uuid4(), route_id=uuid4(), distinction="k", generation=1, title="t",
        source_link=None, template_revision=1, started_at=T0, is_demo=False,
    )


def test_a_new_group_is_firing():
    assert new_group().state is State.FIRING


def test_acknowledge_then_resolve_then_unresolve_returns_to_firing():
    group = new_group()
    group.acknowledge(by="ann", at=T0)
    assert group.state is State.ACKNOWLEDGED
    group.resolve(by="ann", at=T0)
    assert group.state is State.RESOLVED
    group.unresolve(by="ann", at=T0)
    assert group.state is State.FIRING  # unresolve clears the acknowledgement too


@pytest.mark.parametrize(
    "setup, action, kwargs, text",
    [
        (["acknowledge"], "acknowledge", {}, "Can't acknowledge an acknowledged alert group"),
        (["resolve"], "acknowledge", {}, "Can't acknowledge a resolved alert group"),
        ([], "unacknowledge", {}, "Can't unacknowledge an unacknowledged alert group"),
        (["resolve"], "resolve", {}, "Can't resolve a resolved alert group"),
        ([], "unresolve", {}, "Can't unresolve an unresolved alert group"),
        (["resolve"], "silence", {"delay": 60}, "Can't silence a resolved alert group"),
        (["acknowledge"], "silence", {"delay": 60}, "Can't silence an acknowledged alert group"),
        ([], "unsilence", {}, "Can't unsilence an unsilenced alert group"),
    ],
)
def test_refused_actions_say_why_in_oncall_words(setup, action, kwargs, text):
    group = new_group()
    for step in setup:
        getattr(group, step)(by="ann", at=T0)
    with pytest.raises(ActionRefused, match=text):
        getattr(group, action)(by="ann", at=T0, **kwargs)


@pytest.mark.parametrize("delay", [0, -1])
def test_silence_with_zero_or_minus_one_is_forever(delay):
    group = new_group()
    group.silence(by="ann", delay=delay, at=T0)
    assert group.state is State.SILENCED
    assert group.silenced_until is None


def test_timed_silence_ends_only_for_the_silence_it_was_set_for():
    group = new_group()
    group.silence(by="ann", delay=60, at=T0)
    assert group.silenced_until == T0 + timedelta(seconds=60)
    first_fence = group.silence_fence
    group.silence(by="ann", delay=600, at=T0)  # re-silenced: the first deadline is stale
    assert group.unsilence_when_due(fence=first_fence, at=T0 + timedelta(seconds=60)) is False
    assert group.state is State.SILENCED
    assert group.unsilence_when_due(fence=group.silence_fence, at=T0 + timedelta(seconds=600)) is True
    assert group.state is State.FIRING


def test_acknowledging_a_silenced_group_unsilences_it_first():
    group = new_group()
    group.silence(by="ann", delay=60, at=T0)
    group.acknowledge(by="bob", at=T0)
    names = [type(e).__name__ for e in group.collect_events()]
    assert names[-2:] == ["Unsilenced", "Acknowledged"]
    assert group.state is State.ACKNOWLEDGED and not group.silenced


def test_source_signals_are_idempotent():
    group = new_group()
    assert group.resolve_by_source(at=T0) is True
    assert group.resolve_by_source(at=T0) is False
    assert group.acknowledge_by_source(at=T0) is False  # resolved groups are not acknowledged
