"""Maintenance mode through the API, ingest and the ticker, on both backends.

The ticker does not run by itself here: each test ticks it when it means to, so a maintenance
that reads as ended did so with no process acting on it.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import eventually
from tests.integration.conftest import groups_of, send, wait_for_groups

SECOND_PRECISION = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def runtime(settings):
    """The migrated runtime of every test, with its ticker left to the test; the maintenance views
    and the end's command are added where the runtime does not have them yet."""
    import domain.maintenance  # noqa: F401  (registers the maintenance-end deadline)
    from projections.maintenance import MaintenanceDeadlinesView, MaintenanceEndsView
    from tocsin.cli import migrate
    from tocsin.runtime import Runtime

    migrate(settings)
    rt = Runtime(settings)
    for upstream, view in (("config", MaintenanceDeadlinesView), ("alerting", MaintenanceEndsView)):
        if not any(isinstance(p, view) for p in rt.runners[upstream].projections):
            rt.runners[upstream].projections.append(view())
    rt.start(ticker=False)
    yield rt
    rt.close()


def start(client, integration: dict, **body):
    return client.post(f"/api/v1/integrations/{integration['id']}/maintenance_start", json=body)


def stop(client, integration: dict):
    return client.post(f"/api/v1/integrations/{integration['id']}/maintenance_stop")


def get(client, integration: dict) -> dict:
    return client.get(f"/api/v1/integrations/{integration['id']}/").get_json()


def maintenance_of(shown: dict) -> tuple:
    return shown["maintenance_mode"], shown["maintenance_started_at"], shown["maintenance_end_at"]


def maintenance_deadlines(runtime) -> list[dict]:
    return runtime.db.query("SELECT subject, due_at, fence FROM deadlines WHERE kind = 'maintenance-end'")


def tick(runtime, seconds: float = 0) -> int:
    """Run the ticker once, ``seconds`` from now (as its next tick would then)."""
    moved = datetime.now(UTC) + timedelta(seconds=seconds)
    runtime.ticker.clock = lambda: moved
    return runtime.ticker.tick()


def am(key: str, status: str = "firing") -> dict:
    return {"groupKey": key, "status": status, "alerts": [{"status": status, "labels": {"alertname": key}}],
            "groupLabels": {"alertname": key}}  # fmt: skip


def parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_start_shows_the_maintenance_and_stop_ends_it(client, make_integration):
    integration = make_integration("alertmanager", name="Prometheus")
    assert maintenance_of(integration) == (None, None, None)

    response = start(client, integration, mode="Maintenance", duration=10800)  # any case, as OnCall
    assert response.status_code == 200, response.get_json()
    mode, started_at, end_at = maintenance_of(response.get_json())
    assert mode == "maintenance"
    assert SECOND_PRECISION.fullmatch(started_at) and SECOND_PRECISION.fullmatch(end_at)
    assert abs(parse(started_at) - datetime.now(UTC)) < timedelta(seconds=30)
    assert parse(end_at) - parse(started_at) in (timedelta(seconds=10800), timedelta(seconds=10801))
    assert maintenance_of(get(client, integration)) == (mode, started_at, end_at)
    (listed,) = client.get("/api/v1/integrations/?name=Prometheus").get_json()["results"]
    assert maintenance_of(listed) == (mode, started_at, end_at)

    again = start(client, integration, mode="debug", duration=60)
    assert (again.status_code, again.get_json()) == (400, {"detail": "Already on maintenance"})

    stopped = stop(client, integration)
    assert stopped.status_code == 200 and maintenance_of(stopped.get_json()) == (None, None, None)
    assert maintenance_of(get(client, integration)) == (None, None, None)
    assert stop(client, integration).status_code == 200  # nothing in force: nothing to stop
    debug = start(client, integration, mode="DEBUG", duration="3600")  # digits, as OnCall's int()
    assert debug.status_code == 200 and debug.get_json()["maintenance_mode"] == "debug"


BAD_BODIES = [
    ({"duration": 3600}, {"mode": ["Unknown mode"]}),
    ({"mode": None, "duration": 3600}, {"mode": ["Unknown mode"]}),
    ({"mode": "paused", "duration": 3600}, {"mode": ["Unknown mode"]}),
    ({"mode": ["debug"], "duration": 3600}, {"mode": ["Unknown mode"]}),
    ({"mode": "debug\x00", "duration": 3600}, {"mode": ["Unknown mode"]}),
    ({"mode": "debug"}, {"duration": ["Invalid duration"]}),
    ({"mode": "debug", "duration": "an hour"}, {"duration": ["Invalid duration"]}),
    ({"mode": "debug", "duration": "1_000"}, {"duration": ["Invalid duration"]}),
    ({"mode": "debug", "duration": "9" * 5000}, {"duration": ["Invalid duration"]}),
    ({"mode": "debug", "duration": 0}, {"duration": ["Invalid duration"]}),
    ({"mode": "debug", "duration": -60}, {"duration": ["Invalid duration"]}),
    ({"mode": "debug", "duration": 90.5}, {"duration": ["Invalid duration"]}),
    ({"mode": "debug", "duration": True}, {"duration": ["Invalid duration"]}),
    ({"mode": "debug", "duration": 10**30}, {"duration": ["Invalid duration"]}),
    ({"mode": "debug", "duration": 3_153_600_001}, {"duration": ["Invalid duration"]}),
    ({"mode": "debug", "duration": {"seconds": 60}}, {"duration": ["Invalid duration"]}),
]


def test_a_bad_mode_or_duration_is_refused_with_oncalls_texts(client, make_integration):
    integration = make_integration("webhook")
    for body, answer in BAD_BODIES:
        response = start(client, integration, **body)
        assert (response.status_code, response.get_json()) == (400, answer), body
    assert maintenance_of(get(client, integration)) == (None, None, None)


def test_other_bodies_ids_and_roles_are_refused(runtime, app, client, make_integration):
    from tocsin.cli import create_token

    integration = make_integration("webhook")
    path = f"/api/v1/integrations/{integration['id']}/maintenance_start"
    no_body = client.post(path)
    assert (no_body.status_code, no_body.get_json()) == (400, {"mode": ["Unknown mode"]})
    for data in ("[1, 2]", "{not json", '"debug"', '{"mode": ' + "[" * 5000 + "]" * 5000 + "}"):
        refused = client.post(path, data=data, content_type="application/json")
        assert refused.status_code == 400 and "detail" in refused.get_json(), data
    for action in ("maintenance_start", "maintenance_stop"):
        missing = client.post(f"/api/v1/integrations/CNOSUCHONE1/{action}", json={"mode": "debug", "duration": 60})
        assert (missing.status_code, missing.get_json()) == (404, {"detail": "Not found."})
    for role in ("viewer", "editor"):
        other = app.test_client()
        other.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, f"{role}-user", role)
        for action in ("maintenance_start", "maintenance_stop"):
            response = other.post(f"/api/v1/integrations/{integration['id']}/{action}", json={"mode": "debug", "duration": 60})
            assert response.status_code == 403, (role, action)
            assert response.get_json() == {"detail": "You do not have permission to perform this action."}
    assert maintenance_of(get(client, integration)) == (None, None, None)


def test_maintenance_collects_every_alert_into_one_group_and_its_stop_resolves_it(runtime, client, make_integration):
    integration = make_integration("alertmanager", name="Prometheus")
    send(client, integration, am("disk"))
    wait_for_groups(client, integration["id"], 1)
    assert start(client, integration, mode="maintenance", duration=3600).status_code == 200
    (deadline,) = maintenance_deadlines(runtime)
    assert deadline["fence"] == 1 and deadline["due_at"][:19] + "Z" == get(client, integration)["maintenance_end_at"]

    for payload in (am("cpu"), am("disk"), am("cpu", "resolved"), am("mem")):
        send(client, integration, payload)
    maintenance_group, disk = wait_for_groups(client, integration["id"], 2, alerts_count=4)
    assert maintenance_group["title"] == "Maintenance of Prometheus for 1 hour"
    assert maintenance_group["state"] == "firing"  # a resolve signal does not end it
    assert maintenance_group["route_id"] == integration["default_route"]["id"]
    assert (disk["alerts_count"], disk["state"]) == (1, "firing")
    assert tick(runtime) == 0  # not due yet

    assert stop(client, integration).status_code == 200
    assert maintenance_deadlines(runtime)[0]["due_at"] < deadline["due_at"]  # due now
    assert tick(runtime) == 1
    groups = wait_for_groups(client, integration["id"], 2, state="resolved")
    assert groups[0]["id"] == maintenance_group["id"] and groups[1]["state"] == "firing"
    timeline = client.get(f"/api/v1/alert_groups/{maintenance_group['id']}/timeline/").get_json()["results"]
    assert timeline[-1]["action"] == "Resolved by stop maintenance"
    eventually(lambda: maintenance_deadlines(runtime) == [], describe="the deadline cleared")
    assert tick(runtime, 7200) == 0  # nothing fires again

    send(client, integration, am("disk"))  # grouped as usual again: joins the open group
    eventually(lambda: [g["alerts_count"] for g in groups_of(client, integration["id"])] == [4, 2],
               describe="the alert after the stop in its usual group")  # fmt: skip


def test_a_maintenance_ends_on_time_by_itself_and_the_ticker_resolves_its_group(runtime, client, make_integration):
    integration = make_integration("formatted_webhook", name="hook")
    shown = start(client, integration, mode="maintenance", duration=2).get_json()
    send(client, integration, {"alert_uid": "a", "title": "during"})
    (group,) = wait_for_groups(client, integration["id"], 1)
    assert group["title"] == "Maintenance of hook for 2 seconds"
    time.sleep(max(0.0, (parse(shown["maintenance_end_at"]) - datetime.now(UTC)).total_seconds()) + 1)

    assert maintenance_of(get(client, integration)) == (None, None, None)  # no event, no process
    send(client, integration, {"alert_uid": "a", "title": "after"})
    groups = wait_for_groups(client, integration["id"], 2)
    assert sorted(g["title"] for g in groups) == ["Maintenance of hook for 2 seconds", "after"]
    assert start(client, integration, mode="debug", duration=60).status_code == 200  # over: can start again

    assert tick(runtime) == 1
    resolved = eventually(
        lambda: [g for g in groups_of(client, integration["id"]) if g["id"] == group["id"] and g["state"] == "resolved"],
        describe="the maintenance group resolved",
    )
    assert resolved[0]["alerts_count"] == 1


def test_debug_mode_groups_as_usual_and_sets_no_deadline(runtime, client, make_integration):
    integration = make_integration("alertmanager")
    assert start(client, integration, mode="debug", duration=3600).status_code == 200
    send(client, integration, am("cpu"))
    send(client, integration, am("cpu"))
    send(client, integration, am("cpu", "resolved"))
    (group,) = wait_for_groups(client, integration["id"], 1, state="resolved")
    assert group["alerts_count"] == 3
    assert maintenance_deadlines(runtime) == []
    assert stop(client, integration).status_code == 200
    assert maintenance_deadlines(runtime) == [] and tick(runtime) == 0


def test_replay_rebuilds_maintenance_deadlines_and_keeps_the_other_deadlines(runtime, client, make_integration):
    ended = make_integration("alertmanager", name="ended")
    running = make_integration("alertmanager", name="running")
    silenced = make_integration("webhook", name="silenced")
    start(client, ended, mode="maintenance", duration=600)
    send(client, ended, am("cpu"))
    stop(client, ended)
    assert tick(runtime) == 1
    start(client, running, mode="maintenance", duration=600)
    send(client, silenced, {"title": "x"})
    (group,) = wait_for_groups(client, silenced["id"], 1)
    client.post(f"/api/v1/alert_groups/{group['id']}/silence", json={"delay": 3600})
    runtime.catch_up()

    def snapshot() -> dict:
        return {
            "deadlines": runtime.db.query("SELECT kind, subject, due_at, fence FROM deadlines ORDER BY kind, subject"),
            "maintenance_ends": runtime.db.query("SELECT * FROM maintenance_ends ORDER BY maintenance"),
            "integrations": runtime.db.query(
                "SELECT id, maintenance_mode, maintenance_started_at, maintenance_end_at FROM integrations ORDER BY id"
            ),
        }

    live = snapshot()
    assert sorted(row["kind"] for row in live["deadlines"]) == ["maintenance-end", "unsilence"]
    assert len(live["maintenance_ends"]) == 1
    runtime.rebuild_read_models()
    assert snapshot() == live
