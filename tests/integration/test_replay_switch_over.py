"""`tocsin replay` switches the read models over at once: readers never see them empty or partial."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from uuid import UUID

import pytest

from domain.inbox import KIND_ALERT, ReceivedAlert
from tests.conftest import eventually
from tests.integration.conftest import inbound_path

GROUPS = 1200  # each alert opens its own group: about three alerting events per alert


def _received(integration_uuid: UUID, number: int) -> ReceivedAlert:
    payload = {
        "status": "firing",
        "groupKey": f'{{}}:{{alertname="Replay{number}"}}',
        "groupLabels": {"alertname": f"Replay{number}"},
        "alerts": [{"status": "firing", "labels": {"alertname": f"Replay{number}"}}],
    }
    return ReceivedAlert(
        integration_id=integration_uuid,
        kind=KIND_ALERT,
        payload_json=json.dumps(payload),
        received_at=datetime.now(timezone.utc),
    )


def test_token_lookups_and_the_group_list_answer_in_full_throughout_a_replay(runtime, app, client, make_integration):
    from web.inbound import directory

    integration = make_integration("alertmanager")
    path = inbound_path(integration)
    row = runtime.db.query_one("SELECT uuid FROM integrations WHERE id = %s", (integration["id"],))
    integration_uuid = UUID(row["uuid"])
    for start in range(0, GROUPS, 200):
        runtime.inbox.save(*(_received(integration_uuid, n) for n in range(start, start + 200)))
    list_url = f"/api/v1/alert_groups/?integration_id={integration['id']}&perpage=1"
    eventually(
        lambda: client.get(list_url).get_json()["count"] == GROUPS, timeout=120, describe=f"{GROUPS} groups"
    )
    admin = client.environ_base["HTTP_AUTHORIZATION"]
    (acted_on,) = client.get(list_url).get_json()["results"]

    answers: list[tuple[str, int, object]] = []
    actions: list[str] = []
    stop = threading.Event()

    def read_all_the_time() -> None:
        reader = app.test_client()
        while not stop.is_set():
            directory.forget()  # every lookup goes to the read model, not the token cache
            page = reader.get(path)
            answers.append(("integration page", page.status_code, None))
            groups = reader.get(list_url, headers={"Authorization": admin})
            body = groups.get_json(silent=True) or {}
            answers.append(("alert groups", groups.status_code, body.get("count")))
            time.sleep(0.005)

    def act_all_the_time() -> None:
        # Each action waits for its projection, which the replay holds up until it commits.
        actor = app.test_client()
        while not stop.is_set():
            action = ("acknowledge", "unacknowledge")[len(actions) % 2]
            response = actor.post(f"/api/v1/alert_groups/{acted_on['id']}/{action}", headers={"Authorization": admin})
            answers.append(("action", response.status_code, None))
            if response.status_code == 200:
                actions.append(action)

    workers = [threading.Thread(target=read_all_the_time), threading.Thread(target=act_all_the_time)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.1)
        before = len(answers)
        began = time.monotonic()
        replayed = runtime.rebuild_read_models()
        took = time.monotonic() - began
        seen_during = len(answers) - before
        time.sleep(0.1)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)

    assert replayed["alerting"] >= 3 * GROUPS, replayed
    assert seen_during >= 10, f"only {seen_during} answers during a {took:.2f}s replay"
    pages = [status for kind, status, _ in answers if kind == "integration page"]
    lists = [(status, count) for kind, status, count in answers if kind == "alert groups"]
    acts = [status for kind, status, _ in answers if kind == "action"]
    assert set(pages) == {200}, f"integration URL answered {sorted(set(pages))} during the replay"
    assert set(lists) == {(200, GROUPS)}, f"alert group list answered {sorted(set(lists))[:5]}"
    assert set(acts) == {200}, f"actions answered {sorted(set(acts))}"
    expected = "acknowledged" if actions[-1] == "acknowledge" else "firing"
    assert client.get(f"/api/v1/alert_groups/{acted_on['id']}/").get_json()["state"] == expected


def test_a_failed_replay_leaves_the_old_read_models(runtime, client, make_integration, monkeypatch):
    from projections.alert_groups import AlertGroupsView

    integration = make_integration("alertmanager")
    for number in range(3):
        client.post(inbound_path(integration), json={"groupKey": f"k{number}", "status": "firing"})
    list_url = f"/api/v1/alert_groups/?integration_id={integration['id']}"
    eventually(lambda: client.get(list_url).get_json()["count"] == 3, describe="3 groups")

    def broken(self, events, cur):
        raise RuntimeError("the view broke halfway")

    monkeypatch.setattr(AlertGroupsView, "apply_batch", broken)
    with pytest.raises(RuntimeError, match="halfway"):
        runtime.rebuild_read_models()
    monkeypatch.undo()

    assert client.get(list_url).get_json()["count"] == 3
    assert client.get(inbound_path(integration)).status_code == 200
