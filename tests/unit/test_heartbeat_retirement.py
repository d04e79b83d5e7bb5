"""A deleted integration's heartbeat is retired: disarmed for good, whatever arrives later."""

from datetime import datetime, timedelta, timezone
from uuid import uuid4

from domain.heartbeat import STATUS_NOT_ARMED, Heartbeat

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def test_a_retired_heartbeat_ignores_pings_and_its_old_deadline():
    heartbeat = Heartbeat(integration_id=uuid4())
    heartbeat.ping(at=T0)
    armed_fence = heartbeat.fence

    assert heartbeat.retire(at=T0 + timedelta(seconds=10)) is True
    assert (heartbeat.status, heartbeat.deadline) == (STATUS_NOT_ARMED, None)
    assert heartbeat.expire(fence=armed_fence, at=T0 + timedelta(seconds=600)) is False

    assert heartbeat.ping(at=T0 + timedelta(seconds=20)) is False
    assert (heartbeat.status, heartbeat.deadline) == (STATUS_NOT_ARMED, None)
    assert heartbeat.expire(fence=heartbeat.fence, at=T0 + timedelta(seconds=900)) is False


def test_retiring_is_recorded_once():
    heartbeat = Heartbeat(integration_id=uuid4())
    heartbeat.ping(at=T0)
    heartbeat.collect_events()
    assert heartbeat.retire(at=T0) is True
    assert heartbeat.retire(at=T0) is False
    assert [type(e).__name__ for e in heartbeat.collect_events()] == ["Retired"]


def test_an_expired_heartbeat_retires_without_a_restored_alert():
    heartbeat = Heartbeat(integration_id=uuid4())
    heartbeat.ping(at=T0)
    heartbeat.expire(fence=heartbeat.fence, at=T0 + timedelta(seconds=600))
    heartbeat.retire(at=T0 + timedelta(seconds=700))
    assert heartbeat.ping(at=T0 + timedelta(seconds=800)) is False  # no "restored" alert either
