"""Heartbeats with a controllable clock: armed by a ping, expired by a fenced deadline, restored."""

from datetime import datetime, timedelta, timezone

import pytest

from domain.heartbeat import STATUS_ALIVE, STATUS_EXPIRED, STATUS_NOT_ARMED, Heartbeat
from domain.inbox import HeartbeatPing
from tests.unit.test_ingest_grouping import Pipeline

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def test_the_first_ping_arms_the_heartbeat():
    heartbeat = Heartbeat(integration_id=Pipeline().integration.id)
    assert heartbeat.status == STATUS_NOT_ARMED and heartbeat.deadline is None
    heartbeat.ping(at=T0)
    assert heartbeat.status == STATUS_ALIVE
    assert heartbeat.deadline == T0 + timedelta(seconds=600)


def test_an_expiry_for_an_older_ping_does_nothing():
    heartbeat = Heartbeat(integration_id=Pipeline().integration.id)
    heartbeat.ping(at=T0)
    stale = heartbeat.fence
    heartbeat.ping(at=T0 + timedelta(seconds=300))
    assert heartbeat.expire(fence=stale, at=T0 + timedelta(seconds=600)) is False
    assert heartbeat.expire(fence=heartbeat.fence, at=T0 + timedelta(seconds=900)) is True
    assert heartbeat.status == STATUS_EXPIRED
    assert heartbeat.expire(fence=heartbeat.fence, at=T0 + timedelta(seconds=901)) is False  # once


def test_changing_the_timeout_moves_the_deadline_and_refuses_odd_values():
    heartbeat = Heartbeat(integration_id=Pipeline().integration.id)
    heartbeat.ping(at=T0)
    heartbeat.change_timeout(60)
    assert heartbeat.deadline == T0 + timedelta(seconds=60)
    with pytest.raises(ValueError, match="one of 60, 120"):
        heartbeat.change_timeout(61)


class HeartbeatPipeline(Pipeline):
    def ping(self, at: datetime) -> None:
        self.inbox.receive_alerts([HeartbeatPing(integration_id=self.integration.id, received_at=at)])
        self.ingest.catch_up()

    def heartbeat(self) -> Heartbeat:
        return self.alerting.repository.get(Heartbeat.create_id(self.integration.id))


@pytest.mark.parametrize("integration_type", ["alertmanager", "webhook", "formatted_webhook"])
def test_silence_raises_the_expired_alert_and_the_next_ping_resolves_it(integration_type):
    p = HeartbeatPipeline(integration_type)
    p.ping(T0)
    heartbeat = p.heartbeat()

    assert p.ingest.expire_heartbeat(heartbeat.id, heartbeat.fence, at=heartbeat.deadline) is True
    (group,) = p.groups()
    assert not group.resolved and p.heartbeat().status == STATUS_EXPIRED

    p.ping(heartbeat.deadline + timedelta(seconds=5))
    (group,) = p.groups()
    assert group.resolved and group.alerts_count == 2
    assert p.heartbeat().status == STATUS_ALIVE


def test_an_expiry_races_with_a_ping_and_loses():
    p = HeartbeatPipeline("webhook")
    p.ping(T0)
    old = p.heartbeat()
    p.ping(T0 + timedelta(seconds=599))  # arrives just before the deadline fires
    assert p.ingest.expire_heartbeat(old.id, old.fence, at=old.deadline) is False
    assert p.groups() == []


def test_a_type_without_heartbeat_ignores_pings():
    p = HeartbeatPipeline("grafana_alerting")
    p.ping(T0)
    assert p.groups() == []
    with pytest.raises(Exception):
        p.heartbeat()
