"""User actions and deadlines as typed commands with registered handlers (in-memory stores)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from domain.alert_group import ActionRefused, State
from domain.commands import (
    DEADLINE_COMMANDS,
    HANDLERS,
    USER_ACTIONS,
    Acknowledge,
    Command,
    CommandHandlers,
    ExpireHeartbeat,
    GroupAction,
    Resolve,
    Silence,
    Unresolve,
    UnsilenceWhenDue,
    deadline,
    deadline_command,
)
from tests.unit.test_ingest_grouping import Pipeline, am

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def one_group(p: Pipeline):
    p.receive(am("k"))
    (group,) = p.groups()
    return group


def test_every_user_action_is_a_command_with_a_handler():
    for name, command_type in USER_ACTIONS.items():
        assert issubclass(command_type, GroupAction), name
        fields = {"delay": 60} if command_type is Silence else {}
        assert callable(HANDLERS.handler_for(command_type(group_id=uuid4(), by="ann", at=T0, **fields)))
    with pytest.raises(FrozenInstanceError):
        Acknowledge(group_id=uuid4(), by="ann", at=T0).by = "bob"


def test_a_command_without_a_handler_is_refused_and_a_second_handler_too():
    @dataclass(frozen=True)
    class Escalate(Command):
        step: int

    handlers = CommandHandlers()
    with pytest.raises(TypeError, match="no handler for Escalate"):
        handlers.handler_for(Escalate(step=3))
    handlers.register(Escalate)(lambda uow, command, context: None)
    with pytest.raises(ValueError, match="already has a handler"):
        handlers.register(Escalate)(lambda uow, command, context: None)


def test_actions_run_as_commands_and_refusals_pass_up():
    p = Pipeline()
    group = one_group(p)
    assert p.alerting.handle(Acknowledge(group_id=group.id, by="ann", at=T0)) is not None
    assert p.alerting.get_group(group.id).state == State.ACKNOWLEDGED
    with pytest.raises(ActionRefused):
        p.alerting.handle(Unresolve(group_id=group.id, by="ann", at=T0))
    p.alerting.handle(Resolve(group_id=group.id, by="ann", at=T0))
    p.receive(am("k"))  # a resolved group takes no new alert: the resolve closed its slot
    assert len(p.groups()) == 2


def test_deadline_kinds_map_to_fenced_commands():
    assert DEADLINE_COMMANDS["unsilence"] is UnsilenceWhenDue and DEADLINE_COMMANDS["heartbeat"] is ExpireHeartbeat
    assert ExpireHeartbeat.application == UnsilenceWhenDue.application == "alerting"
    subject = uuid4()
    assert deadline_command("heartbeat", subject, 7, T0) == ExpireHeartbeat(subject=subject, fence=7, at=T0)
    assert deadline_command("from-a-newer-version", subject, 7, T0) is None
    with pytest.raises(ValueError, match="already UnsilenceWhenDue"):
        deadline("unsilence")(type("Other", (UnsilenceWhenDue,), {}))


def test_an_unsilence_fired_twice_or_for_an_old_silence_changes_nothing():
    p = Pipeline()
    group = one_group(p)
    p.alerting.handle(Silence(group_id=group.id, by="ann", at=T0, delay=1800))
    old_fence = p.alerting.get_group(group.id).silence_fence
    p.alerting.handle(Silence(group_id=group.id, by="ann", at=T0 + timedelta(seconds=60), delay=3600))
    fence = p.alerting.get_group(group.id).silence_fence

    assert p.alerting.handle(UnsilenceWhenDue(subject=group.id, fence=old_fence, at=T0 + timedelta(seconds=1801))) is None
    assert p.alerting.get_group(group.id).state == State.SILENCED
    due = UnsilenceWhenDue(subject=group.id, fence=fence, at=T0 + timedelta(seconds=3661))
    assert p.alerting.handle(due) is not None
    assert p.alerting.handle(due) is None  # fired again: the fence makes it a no-op
    assert p.alerting.get_group(group.id).state == State.FIRING
