"""No template or payload of one integration can stall the others (on SQLite and PostgreSQL).

Renders run in worker processes with a hard time and memory limit; a stopped render is recorded
on its alert, and the integration's templates then cool down. Templates cannot change the payload
they render. A notification gives at most MAX_ALERTS_PER_NOTIFICATION alerts, and the rest are
counted on the group's timeline.
"""

from __future__ import annotations

import json
import re
import threading
import time

from domain.ingest import MAX_ALERTS_PER_NOTIFICATION
from tests.conftest import eventually
from tests.integration.conftest import groups_of, inbound_path, send, wait_for_groups
from tocsin.cli import create_token

# One built-in call (sort of a 10-million-item list) that runs for ~20 s and takes ~1.5 GiB: no
# budget check can stop it. The hard limit stops it, on time or (here, first) on memory.
SORT_BOMB = "{{ (('a'*9999999)|list)|sort|length }}"
STOPPED = re.compile(
    r"Template Error: Template rendering was stopped: it (took longer than 1\.25s|needed more than 256 MiB of memory)"
)
# Well within its time budget, a loop that keeps 80 MB lists until memory runs out.
MEMORY_BOMB = (
    "{% set ns = namespace(kept=[]) %}{% for c in 'x' * 1000 %}"
    "{% set _ = ns.kept.append(('a' * 9999999) | list) %}{% endfor %}{{ ns.kept | length }}"
)


def timeline_of(client, group_id: str) -> list[dict]:
    response = client.get(f"/api/v1/alert_groups/{group_id}/timeline/")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"] if isinstance(response.get_json(), dict) else response.get_json()


def alerts_of(client, group_id: str) -> list[dict]:
    return client.get(f"/api/v1/alerts/?alert_group_id={group_id}&perpage=100").get_json()["results"]


def post(client, integration: dict, payload) -> float:
    """Post ``payload``; the time its 2xx arrived."""
    response = client.post(inbound_path(integration), json=payload)
    assert response.status_code == 200, response.get_data(as_text=True)
    return time.monotonic()


def visible_after(client, integration: dict, since: float, timeout: float = 30.0) -> float:
    eventually(lambda: groups_of(client, integration["id"]), timeout=timeout, describe=f"a group of {integration['name']}")
    return time.monotonic() - since


def test_a_template_cannot_change_the_payload_that_is_stored(client, make_integration):
    # Legacy types store each alert of the body on its own; the template runs before that.
    integration = make_integration(
        "legacy_alertmanager",
        templates={"grouping_key": '{{ payload.labels.update({"alertname": "Changed"}) }}{{ payload.labels }}'},
    )
    alert = {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db-1"}}
    send(client, integration, {"status": "firing", "alerts": [alert]})
    (group,) = wait_for_groups(client, integration["id"], 1)
    (stored,) = alerts_of(client, group["id"])
    assert stored["payload"] == alert
    assert group["title"] == "DiskFull"  # the title template saw the payload as received too

    # The refused change is recorded on the alert as OnCall shows it.
    entries = eventually(
        lambda: [e for e in timeline_of(client, group["id"]) if e["type"] == 100], describe="a template error entry"
    )
    assert "grouping_key: Template Error: access to attribute 'update' of 'dict' object is unsafe." in entries[0]["action"]


def test_templates_may_still_change_what_they_made_themselves(client, make_integration):
    integration = make_integration(
        "webhook",
        templates={
            "grouping_key": "{% set keys = [] %}{% set _ = keys.append(payload.service) %}{{ keys | join }}",
            "web": {"title": '{% set l = payload.labels.copy() %}{% set _ = l.pop("secret") %}{{ l | dictsort }}'},
        },
    )
    send(client, integration, {"service": "db", "labels": {"secret": "x", "team": "a"}})
    send(client, integration, {"service": "db", "labels": {"secret": "y", "team": "a"}})
    (group,) = wait_for_groups(client, integration["id"], 1, alerts_count=2)
    assert group["title"] == "[('team', 'a')]"


def test_a_template_bomb_is_stopped_and_recorded_while_other_integrations_go_on(client, make_integration):
    bombs = make_integration("webhook", name="Bombs", templates={"grouping_key": SORT_BOMB})
    other = make_integration("webhook", name="Other")
    for n in range(3):
        post(client, bombs, {"n": n})
    # Sent while the first bomb renders: must not wait for the three of them.
    elapsed = visible_after(client, other, post(client, other, {"service": "db"}))
    assert elapsed < 2.0, f"another integration's alert took {elapsed:.2f}s to be visible"

    # Every bomb alert is stored, each in a group of its own (no grouping key), with its error.
    groups = wait_for_groups(client, bombs["id"], 3)
    grouping_errors = []
    for group in groups:
        (alert,) = alerts_of(client, group["id"])
        assert alert["payload"] in ({"n": 0}, {"n": 1}, {"n": 2})
        entries = eventually(
            lambda g=group: [e for e in timeline_of(client, g["id"]) if e["type"] == 100], describe="template errors"
        )
        grouping_errors.append(entries[0]["details"]["template_errors"]["grouping_key"])
    # The first was stopped at the hard limit; the integration's next ones were not rendered at all.
    not_rendered = "Template Error: Not rendered: a template of this integration went over a hard limit less than 30s ago"
    stopped, *others = sorted(grouping_errors, key=lambda error: error == not_rendered)
    assert STOPPED.match(stopped) and stopped.endswith("; this integration's templates are not rendered for 30s")
    assert others == [not_rendered, not_rendered]


def test_a_template_that_fills_memory_is_stopped_and_recorded(client, make_integration):
    integration = make_integration("webhook", templates={"grouping_key": MEMORY_BOMB})
    send(client, integration, {"n": 1})
    (group,) = wait_for_groups(client, integration["id"], 1)
    entries = eventually(
        lambda: [e for e in timeline_of(client, group["id"]) if e["type"] == 100], describe="a template error entry"
    )
    assert "Template rendering was stopped: it needed more than 256 MiB of memory" in entries[0]["action"]
    assert entries[0]["details"]["template_errors"]["grouping_key"].startswith("Template Error: ")


def test_a_bomb_in_every_template_costs_one_limit_and_its_title_says_so(client, make_integration):
    integration = make_integration(
        "webhook",
        templates={name: SORT_BOMB for name in ("grouping_key", "resolve_signal", "acknowledge_signal", "source_link")}
        | {"web": {"title": SORT_BOMB}},
    )
    since = post(client, integration, {"n": 1})
    (group,) = wait_for_groups(client, integration["id"], 1)
    assert time.monotonic() - since < 5.0
    assert group["title"].startswith("Template Error: ")
    assert group["state"] == "firing"


def test_a_viewer_bomb_preview_answers_within_about_the_limit_and_health_stays_fast(app, runtime, client, make_integration):
    integration = make_integration("webhook")
    viewer = app.test_client()
    viewer.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, "viewer", "viewer")
    answers: list[tuple[float, dict]] = []

    def bomb_preview():
        began = time.monotonic()
        response = viewer.post(
            f"/api/v1/integrations/{integration['id']}/preview_template",
            json={"template_name": "grouping_key", "template_body": SORT_BOMB, "payload": {}},
        )
        answers.append((time.monotonic() - began, response.get_json()))

    threads = [threading.Thread(target=bomb_preview) for _ in range(3)]
    for thread in threads:
        thread.start()
    health = []
    while any(thread.is_alive() for thread in threads):
        began = time.monotonic()
        app.test_client().get("/health")
        health.append(time.monotonic() - began)
        time.sleep(0.05)
    for thread in threads:
        thread.join()

    assert len(answers) == 3
    for took, answer in answers:
        assert took < 3.0, f"a bomb preview took {took:.2f}s"
        assert answer["preview"] is None
        assert STOPPED.match(answer["error"]), answer["error"]
        assert answer["grouping_distinction"] is None
    assert max(health) < 0.5, f"/health took up to {max(health):.2f}s during bomb previews"


def test_a_bomb_in_a_proposed_set_stops_the_sets_later_fields_at_once(client, make_integration):
    integration = make_integration("webhook")
    began = time.monotonic()
    response = client.post(
        f"/api/v1/integrations/{integration['id']}/preview_template",
        json={"templates": {"grouping_key": SORT_BOMB, "web": {"title": SORT_BOMB, "message": "fine"}}, "payload": {}},
    )
    assert time.monotonic() - began < 3.0
    results = response.get_json()["templates"]
    assert STOPPED.match(results["grouping_key"]["error"])
    assert results["web"]["title"]["error"] == results["grouping_key"]["error"]


# --- legacy notifications with many alerts ---------------------------------------------------------


def legacy_body(count: int) -> dict:
    return {
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "Flood", "i": str(i)}} for i in range(count)],
    }


def test_a_huge_legacy_notification_is_cut_the_rest_counted_and_others_go_on(client, make_integration):
    flood = make_integration(
        "legacy_alertmanager", name="Flood", templates={"grouping_key": "{{ payload.labels.alertname }}"}
    )
    other = make_integration("webhook", name="Other")
    body = json.dumps(legacy_body(20_000), separators=(",", ":"))
    response = client.post(inbound_path(flood), data=body, content_type="application/json")
    assert response.status_code == 200
    elapsed = visible_after(client, other, post(client, other, {"service": "db"}))
    assert elapsed < 5.0, f"another integration's alert took {elapsed:.2f}s after a 20,000-alert notification"

    (group,) = wait_for_groups(client, flood["id"], 1, alerts_count=MAX_ALERTS_PER_NOTIFICATION)
    entries = eventually(
        lambda: [e for e in timeline_of(client, group["id"]) if e["type"] == 101], describe="the not-taken count"
    )
    (entry,) = entries
    assert entry["details"]["alerts_not_taken"] == 20_000 - MAX_ALERTS_PER_NOTIFICATION
    assert f"{20_000 - MAX_ALERTS_PER_NOTIFICATION} alerts of the notification" in entry["action"]
    time.sleep(0.5)  # nothing more arrives
    assert groups_of(client, flood["id"])[0]["alerts_count"] == MAX_ALERTS_PER_NOTIFICATION


def test_a_notification_within_the_limit_is_taken_whole(client, make_integration):
    flood = make_integration(
        "legacy_alertmanager", templates={"grouping_key": "{{ payload.labels.alertname }}"}
    )
    send(client, flood, legacy_body(MAX_ALERTS_PER_NOTIFICATION))
    (group,) = wait_for_groups(client, flood["id"], 1, alerts_count=MAX_ALERTS_PER_NOTIFICATION)
    assert not [e for e in timeline_of(client, group["id"]) if e["type"] == 101]


def test_a_long_error_message_is_stored_cut_short(client, make_integration):
    # The message quotes the missing attribute's name, as long as the template allows.
    integration = make_integration("webhook", templates={"grouping_key": "{{ payload.%s.b }}" % ("a" * 40_000)})
    send(client, integration, {"n": 1})
    (group,) = wait_for_groups(client, integration["id"], 1)
    (entry,) = eventually(
        lambda: [e for e in timeline_of(client, group["id"]) if e["type"] == 100], describe="a template error entry"
    )
    error = entry["details"]["template_errors"]["grouping_key"]
    assert error.startswith("Template Warning: 'dict object' has no attribute 'aaa")
    assert len(error) == 502 and error.endswith("..")


def test_a_template_that_renders_a_lone_surrogate_does_not_stop_ingest(client, make_integration):
    # No store can encode a lone surrogate: rendered as it is, this title would make every save
    # of its batch fail, and ingest would retry that batch for ever.
    surrogate = '{{ "%c" | format(55296) }}'
    broken = make_integration(
        "webhook", templates={"grouping_key": surrogate + "key", "web": {"title": "down " + surrogate}}
    )
    other = make_integration("webhook")
    post(client, broken, {"service": "api"})
    since = post(client, other, {"service": "db"})
    visible_after(client, other, since)
    (group,) = wait_for_groups(client, broken["id"], 1)
    assert group["title"] == "down \ufffd"
