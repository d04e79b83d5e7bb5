"""Correctness under concurrency, and read models that rebuild to exactly what they were."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from projections.runner import ProjectionRunner
from tests.conftest import eventually, load_payload
from tests.integration.conftest import groups_of, inbound_path, wait_for_groups

FIRING = load_payload("captured/alertmanager/am-02-firing-group-3-alerts.json")
RESOLVED = load_payload("captured/alertmanager/am-10-resolved-group.json")
READ_MODELS = ("alert_groups", "alerts", "timeline", "deadlines", "integrations", "api_tokens", "heartbeats")


def post_many(app, path: str, body: bytes, count: int) -> list[int]:
    def post(_):
        with app.test_client() as c:
            return c.post(path, data=body, content_type="application/json").status_code

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(post, range(count)))


def test_32_identical_alerts_at_once_make_one_group(app, client, make_integration):
    integration = make_integration("alertmanager")
    statuses = post_many(app, inbound_path(integration), FIRING, 32)
    assert statuses == [200] * 32
    (group,) = wait_for_groups(client, integration["id"], 1, alerts_count=32)
    alerts = client.get(f"/api/v1/alerts/?alert_group_id={group['id']}&perpage=100").get_json()
    assert alerts["count"] == 32


def test_parallel_acknowledge_and_resolve_apply_once_each(app, client, make_integration, admin_token):
    integration = make_integration("alertmanager")
    client.post(inbound_path(integration), data=FIRING, content_type="application/json")
    (group,) = wait_for_groups(client, integration["id"], 1)

    def act(action: str) -> int:
        with app.test_client() as c:
            return c.post(
                f"/api/v1/alert_groups/{group['id']}/{action}", headers={"Authorization": admin_token}
            ).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(act, ["acknowledge", "resolve"] * 8))
    assert set(statuses) <= {200, 400}, statuses
    assert statuses[1::2].count(200) == 1  # exactly one resolve won
    final = client.get(f"/api/v1/alert_groups/{group['id']}/").get_json()
    assert final["state"] == "resolved"
    timeline = client.get(f"/api/v1/alert_groups/{group['id']}/timeline/").get_json()["results"]
    types = [entry["type"] for entry in timeline]
    assert types.count(13) == 1 and types.count(0) <= 1


def test_alerts_arriving_during_user_actions_are_all_kept(app, client, make_integration, admin_token):
    integration = make_integration("alertmanager")
    path = inbound_path(integration)
    client.post(path, data=FIRING, content_type="application/json")
    (group,) = wait_for_groups(client, integration["id"], 1)

    def toggle(_):
        with app.test_client() as c:
            for action in ("acknowledge", "unacknowledge"):
                c.post(f"/api/v1/alert_groups/{group['id']}/{action}", headers={"Authorization": admin_token})

    with ThreadPoolExecutor(max_workers=8) as pool:
        posts = pool.submit(post_many, app, path, FIRING, 20)
        list(pool.map(toggle, range(5)))
        assert posts.result() == [200] * 20
    eventually(
        lambda: groups_of(client, integration["id"])[0]["alerts_count"] == 21,
        describe="all 21 alerts in the one group",
    )


def snapshot(runtime) -> dict[str, list]:
    tables = {}
    for table in READ_MODELS:
        rows = runtime.db.query(f"SELECT * FROM {table}")
        tables[table] = sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)
    return tables


def test_replay_rebuilds_every_read_model_exactly(runtime, client, make_integration):
    am = make_integration("alertmanager")
    hook = make_integration("webhook", name="hook")
    client.post(inbound_path(am), data=FIRING, content_type="application/json")
    client.post(inbound_path(hook), json={"alert_uid": "x", "title": "cpu"})
    client.post(inbound_path(hook), json={"alert_uid": "y", "title": "disk"})
    client.get(inbound_path(am) + "heartbeat/")
    groups = wait_for_groups(client, hook["id"], 2)
    client.post(f"/api/v1/alert_groups/{groups[0]['id']}/acknowledge")
    client.post(f"/api/v1/alert_groups/{groups[1]['id']}/silence", json={"delay": 3600})
    client.post(inbound_path(am), data=RESOLVED, content_type="application/json")
    wait_for_groups(client, am["id"], 1, state="resolved")
    runtime.catch_up()
    live = snapshot(runtime)
    assert live["alert_groups"] and live["timeline"] and live["deadlines"]

    runtime.rebuild_read_models()

    assert snapshot(runtime) == live


def test_read_models_are_the_same_event_by_event_and_in_one_batch(runtime, client, make_integration):
    """A batch writes new groups and attached alerts in bulk; other changes must still see them."""
    hook = make_integration("formatted_webhook", name="batched")
    for i in range(3):
        for uid in ("a", "b", "c"):
            client.post(inbound_path(hook), json={"alert_uid": uid, "title": f"{uid} {i}"})
    groups = {g["title"]: g for g in wait_for_groups(client, hook["id"], 3)}
    client.post(f"/api/v1/alert_groups/{groups['a 0']['id']}/acknowledge")
    client.post(inbound_path(hook), json={"alert_uid": "a", "title": "a again"})
    client.post(f"/api/v1/alert_groups/{groups['b 0']['id']}/resolve")
    client.post(inbound_path(hook), json={"alert_uid": "b", "title": "b reopened"})
    client.post(inbound_path(hook), json={"alert_uid": "c", "title": "c ok", "state": "ok"})
    wait_for_groups(client, hook["id"], 4)
    runtime.catch_up()
    live = snapshot(runtime)
    rows = runtime.db.query("SELECT * FROM alert_groups WHERE integration_id = %s", (hook["id"],))
    by_title = {g["title"]: g for g in rows}
    assert (by_title["a 0"]["alerts_count"], by_title["a 0"]["state"]) == (4, "acknowledged")
    assert by_title["c 0"]["state"] == "resolved"

    for batch_size in (1, 10_000):
        for runner in runtime.runners.values():
            runner.batch_size = batch_size
        runtime.rebuild_read_models()
        assert snapshot(runtime) == live, f"batch size {batch_size}"


def test_a_busy_projection_follows_a_rebuild_started_elsewhere(settings):
    """`tocsin replay` in another process rewinds the views under a `tocsin project` mid-stream."""
    from tocsin.cli import create_token, migrate
    from tocsin.runtime import Runtime
    from web import create_app

    migrate(settings)
    runtime = Runtime(settings)  # not started: this test drives the runners itself
    try:
        client = create_app(runtime).test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, "admin", "admin")
        hook = client.post("/api/v1/integrations/", json={"type": "formatted_webhook", "name": "r"}).get_json()
        for i in range(6):
            client.post(inbound_path(hook), json={"alert_uid": f"u{i}", "title": f"t{i}"})
        runtime.ingest.catch_up()
        busy = runtime.runners["alerting"]
        busy.batch_size = 16
        assert busy.run_batch() == 16  # mid-stream: it knows where it is

        elsewhere = ProjectionRunner(runtime.db, runtime.alerting, busy.projections, batch_size=1)
        with runtime.db.transaction() as cur:  # what a rebuild does first
            for projection in elsewhere.projections:
                for table in projection.tables:
                    cur.execute(f"DELETE FROM {table}")
            cur.execute("UPDATE projection_tracking SET position = 0 WHERE upstream = %s", ("alerting",))
        assert elsewhere.run_batch() == 1  # ... and it is only part of the way through

        busy.catch_up()
        after = snapshot(runtime)
        runtime.rebuild_read_models()
        assert after == snapshot(runtime)
    finally:
        runtime.close()


def test_a_busy_ingest_gathers_a_stream_into_few_batches_and_keeps_every_alert(settings):
    """Each batch costs queries and a transaction whatever its size: under a steady stream,
    ingest starts one at most every ``batch_interval`` instead of one per arriving alert."""
    from tocsin.cli import create_token, migrate
    from tocsin.runtime import Runtime
    from web import create_app

    migrate(settings)
    runtime = Runtime(settings)  # not started: this test runs ingest itself
    stop = threading.Event()
    try:
        client = create_app(runtime).test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, "admin", "admin")
        hook = client.post("/api/v1/integrations/", json={"type": "formatted_webhook", "name": "s"}).get_json()
        ingest = runtime.ingest
        ingest.batch_interval = 0.25
        batches: list[int] = []
        run_batch = ingest.run_batch

        def counted() -> int:
            count = run_batch()
            if count:
                batches.append(count)
            return count

        ingest.run_batch = counted
        worker = threading.Thread(target=ingest.run_forever, args=(stop,), daemon=True)
        worker.start()
        for i in range(30):  # about one every 40 ms for 1.2 s
            assert client.post(inbound_path(hook), json={"alert_uid": f"u{i}", "title": f"t{i}"}).status_code == 200
            time.sleep(0.04)
        eventually(lambda: sum(batches) == 30, describe="every alert ingested")
        assert len(batches) <= 8, batches  # one per alert without pacing
        runtime.runners["alerting"].catch_up()
        assert len(groups_of(client, hook["id"])) == 30
    finally:
        stop.set()
        runtime.ingest.waker.notify()
        runtime.close()
