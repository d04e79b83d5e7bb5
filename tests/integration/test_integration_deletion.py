"""Deleting an integration disarms its heartbeat for good, on both backends.

The ticker is driven directly with a moved clock, as its next tick would run.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import UUID

from domain.heartbeat import Heartbeat
from domain.inbox import HeartbeatPing
from tests.conftest import eventually
from tests.integration.conftest import groups_of, inbound_path


def later(runtime, seconds: int) -> int:
    """Move the ticker's clock forward and run it once; returns what the tick changed."""
    moved = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    runtime.ticker.clock = lambda: moved
    return runtime.ticker.tick()


def armed_integration(client, make_integration, type_: str = "alertmanager") -> dict:
    integration = make_integration(type_)
    client.patch(f"/api/v1/integrations/{integration['id']}/", json={"heartbeat": {"timeout_seconds": 60}})
    assert client.get(inbound_path(integration) + "heartbeat/").status_code == 200
    eventually(
        lambda: client.get(f"/api/v1/integrations/{integration['id']}/").get_json()["heartbeat"]["status"] == "alive",
        describe="heartbeat armed",
    )
    return integration


def heartbeat_of(runtime, integration: dict) -> Heartbeat:
    uuid = UUID(runtime.db.query_one("SELECT uuid FROM integrations WHERE id = %s", (integration["id"],))["uuid"])
    return runtime.alerting.repository.get(Heartbeat.create_id(uuid))


def heartbeat_row(runtime, integration: dict) -> dict:
    return runtime.db.query_one(
        "SELECT h.status, h.last_heartbeat_at FROM heartbeats h JOIN integrations i ON i.uuid = h.integration_uuid"
        " WHERE i.id = %s",
        (integration["id"],),
    )


def all_groups(runtime) -> list[dict]:
    runtime.catch_up()
    return runtime.db.query("SELECT integration_id, title, state FROM alert_groups")


def test_deleting_an_integration_disarms_its_heartbeat(runtime, client, make_integration):
    integration = armed_integration(client, make_integration)

    assert client.delete(f"/api/v1/integrations/{integration['id']}/").status_code == 204
    # The disarm is an event on the heartbeat, and the read models follow it at once.
    heartbeat = heartbeat_of(runtime, integration)
    assert heartbeat.retired and heartbeat.status == "not_armed"
    assert heartbeat_row(runtime, integration) == {"status": "not_armed", "last_heartbeat_at": None}
    assert runtime.db.query("SELECT * FROM deadlines") == []

    later(runtime, 61)
    later(runtime, 601)
    assert all_groups(runtime) == []
    runtime.rebuild_read_models()  # the views say the same when rebuilt from the events
    assert heartbeat_row(runtime, integration) == {"status": "not_armed", "last_heartbeat_at": None}
    assert runtime.db.query("SELECT * FROM deadlines") == []
    # Its token is gone, heartbeat URL included.
    assert client.get(inbound_path(integration) + "heartbeat/").status_code == 403


def test_a_deadline_left_behind_by_a_deletion_disarms_instead_of_alerting(runtime, client, make_integration):
    """The integration is deleted but its heartbeat never heard (a crash between the two writes,
    or a deadline row the ticker read before the disarm): the expiry itself checks."""
    integration = armed_integration(client, make_integration, "webhook")
    uuid = UUID(runtime.db.query_one("SELECT uuid FROM integrations WHERE id = %s", (integration["id"],))["uuid"])
    runtime.wait_for("config", runtime.config.delete_integration(uuid, at=datetime.now(timezone.utc)))
    assert runtime.db.query_one("SELECT fence FROM deadlines") is not None  # still armed

    assert later(runtime, 61) == 1  # the one change: the heartbeat disarmed
    assert all_groups(runtime) == []
    assert heartbeat_of(runtime, integration).retired
    eventually(lambda: runtime.db.query("SELECT * FROM deadlines") == [], describe="deadline cleared")
    assert heartbeat_row(runtime, integration)["status"] == "not_armed"
    assert later(runtime, 601) == 0


def test_a_ping_accepted_before_the_deletion_does_not_arm_it_again(runtime, client, make_integration):
    integration = armed_integration(client, make_integration)
    uuid = UUID(runtime.db.query_one("SELECT uuid FROM integrations WHERE id = %s", (integration["id"],))["uuid"])
    assert client.delete(f"/api/v1/integrations/{integration['id']}/").status_code == 204

    # As if the web process had committed a ping just before the deletion and ingest got to it after.
    runtime.inbox.receive_alerts([HeartbeatPing(integration_id=uuid, received_at=datetime.now(timezone.utc))])
    runtime.catch_up()
    assert heartbeat_of(runtime, integration).status == "not_armed"
    assert runtime.db.query("SELECT * FROM deadlines") == []
    later(runtime, 601)
    assert all_groups(runtime) == []


def test_other_integrations_heartbeats_still_expire(runtime, client, make_integration):
    kept = armed_integration(client, make_integration, "alertmanager")
    deleted = armed_integration(client, make_integration, "formatted_webhook")
    assert client.delete(f"/api/v1/integrations/{deleted['id']}/").status_code == 204

    later(runtime, 61)
    (group,) = eventually(lambda: all_groups(runtime), describe="the kept integration's heartbeat group")
    assert (group["integration_id"], group["state"]) == (kept["id"], "firing")
    assert group["title"].startswith("OnCallHeartBeatMissing")
    assert groups_of(client, kept["id"])[0]["state"] == "firing"
