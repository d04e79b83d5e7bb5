"""Template preview and demo alerts over HTTP, on SQLite and on PostgreSQL with the real workers.

``POST /api/v1/integrations/{id}/preview_template`` renders without saving; ``send_demo_alert``
sends the type's example payload through the inbox, and a demo alert always opens its own group.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from domain.integrations import INTEGRATION_TYPES
from tests.conftest import eventually
from tests.integration.conftest import groups_of, send, wait_for_groups
from tocsin.cli import create_token

DISK_FULL = {
    "status": "firing",
    "groupKey": '{}:{alertname="DiskFull"}',
    "groupLabels": {"alertname": "DiskFull"},
    "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db-1"}}],
}
NO_PERMISSION = {"detail": "You do not have permission to perform this action."}


def preview(client, integration: dict, **body):
    return client.post(f"/api/v1/integrations/{integration['id']}/preview_template", json=body)


def preview_ok(client, integration: dict, **body) -> dict:
    response = preview(client, integration, **body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def send_demo(client, integration: dict, **body):
    return client.post(f"/api/v1/integrations/{integration['id']}/send_demo_alert", json=body)


def client_with_role(app, runtime, role: str):
    other = app.test_client()
    other.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, role, role)
    return other


@pytest.fixture
def prometheus(make_integration) -> dict:
    return make_integration("alertmanager", name="Prometheus")


# --- preview_template ---------------------------------------------------------------------------


def test_preview_web_title_against_a_given_payload(client, prometheus):
    body = "{{ payload.groupLabels.alertname }} on {{ integration_name }}"

    result = preview_ok(client, prometheus, template_name="web.title", template_body=body, payload=DISK_FULL)

    assert result == {"preview": "DiskFull on Prometheus", "is_valid_json_object": False}
    # OnCall's internal template names work too; a JSON object is recognised as one.
    as_oncall = preview_ok(client, prometheus, template_name="web_title", template_body=body, payload=DISK_FULL)
    assert as_oncall == result
    labels = preview_ok(
        client, prometheus, template_name="web.message", template_body="{{ payload.groupLabels | tojson }}",
        payload=DISK_FULL,
    )  # fmt: skip
    assert labels == {"preview": '{"alertname": "DiskFull"}', "is_valid_json_object": True}
    # Nothing was saved.
    saved = client.get(f"/api/v1/integrations/{prometheus['id']}/").get_json()["templates"]
    assert saved["web"]["title"] is None


def test_preview_renders_the_newest_alert_by_default_or_a_chosen_one(client, prometheus):
    send(client, prometheus, "captured/alertmanager/am-01-firing-single.json")  # DiskFull
    wait_for_groups(client, prometheus["id"], 1)
    send(client, prometheus, "captured/alertmanager/am-02-firing-group-3-alerts.json")  # InstanceDown
    wait_for_groups(client, prometheus["id"], 2)
    newest, oldest = client.get("/api/v1/alerts/").get_json()["results"]
    title = {"template_name": "web.title", "template_body": "{{ payload.groupLabels.alertname }}"}

    assert preview_ok(client, prometheus, **title)["preview"] == "InstanceDown"
    assert preview_ok(client, prometheus, **title, alert_id=oldest["id"])["preview"] == "DiskFull"
    assert preview_ok(client, prometheus, **title, alert_id=newest["id"])["preview"] == "InstanceDown"
    # The type's default web title, on the stored alert.
    default = preview_ok(client, prometheus, template_name="web.title", template_body=None, alert_id=oldest["id"])
    assert default["preview"] == groups_of(client, prometheus["id"])[1]["title"]

    # The newest alert may join an older group: it is still the one previewed by default.
    send(client, prometheus, "captured/alertmanager/am-01-firing-single.json")
    eventually(lambda: groups_of(client, prometheus["id"])[1]["alerts_count"] == 2, describe="DiskFull again")
    assert preview_ok(client, prometheus, **title)["preview"] == "DiskFull"


def test_preview_needs_an_alert_of_this_integration(client, prometheus, make_integration):
    title = {"template_name": "web.title", "template_body": "{{ payload.title }}"}

    response = preview(client, prometheus, **title)
    assert response.status_code == 400
    assert response.get_json()["detail"].startswith("Alert to preview does not exist")

    other = make_integration("formatted_webhook")
    send(client, other, {"alert_uid": "1", "title": "Elsewhere"})
    [group] = wait_for_groups(client, other["id"], 1)
    [alert] = client.get(f"/api/v1/alerts/?alert_group_id={group['id']}").get_json()["results"]
    response = preview(client, prometheus, **title, alert_id=alert["id"])
    assert (response.status_code, response.get_json()) == (400, {"detail": "Alert to preview does not exist"})
    assert preview_ok(client, other, **title)["preview"] == "Elsewhere"


def test_behaviour_template_previews_give_the_decision(client, prometheus):
    key = preview_ok(client, prometheus, template_name="grouping_key", template_body="{{ payload.groupKey }}",
                     payload=DISK_FULL)  # fmt: skip
    assert key == {
        "preview": '{}:{alertname="DiskFull"}',
        "is_valid_json_object": False,
        "grouping_distinction": hashlib.md5(b'{}:{alertname="DiskFull"}').hexdigest(),
    }
    # An empty body previews the type's default (what saving it would do): the same key here.
    assert preview_ok(client, prometheus, template_name="grouping_key", template_body="", payload=DISK_FULL) == key
    no_key = preview_ok(client, prometheus, template_name="grouping_id", template_body="{{ payload.nothing }}",
                        payload=DISK_FULL)  # fmt: skip
    assert no_key == {"preview": "", "is_valid_json_object": False, "grouping_distinction": None}

    resolved = {**DISK_FULL, "status": "resolved"}
    condition = '{{ payload.status == "resolved" }}'
    result = preview_ok(client, prometheus, template_name="resolve_signal", template_body=condition, payload=resolved)
    assert result == {"preview": "True", "is_valid_json_object": False, "is_resolve_signal": True}
    # OnCall's truthiness rule: only "1", "true" and "ok" count.
    for body, expected in (("{{ 'yes' }}", False), ("{{ ' OK ' }}", True), ("1", True)):
        result = preview_ok(client, prometheus, template_name="acknowledge_signal", template_body=body,
                            payload=DISK_FULL)  # fmt: skip
        assert result["is_acknowledge_signal"] is expected, body


def test_template_failures_answer_200_with_the_error(client, prometheus):
    def error_of(name: str, body: str) -> dict:
        return preview_ok(client, prometheus, template_name=name, template_body=body, payload=DISK_FULL)

    syntax = error_of("web.title", "{{ payload.groupLabels.alertname ")
    assert syntax["preview"] is None and syntax["is_valid_json_object"] is False
    assert syntax["error"].startswith("Template Error: ")

    unsafe = error_of("web.message", "{{ payload.__init__() }}")
    assert unsafe["preview"] is None
    assert unsafe["error"].startswith("Template Error: ")
    restricted = error_of("slack.title", "{% for i in range(3) %}{{ i }}{% endfor %}")
    assert restricted["error"] == "Template Error: use of 'range' is restricted"

    warning = error_of("web.title", "{{ payload.missing.deeper }}")
    assert warning["preview"] is None and warning["error"].startswith("Template Warning: ")

    # A broken behaviour template decides what ingest would: no key (own group), not a signal.
    broken_key = error_of("grouping_key", "{{ payload.groupKey ")
    assert broken_key["grouping_distinction"] is None and broken_key["error"].startswith("Template Error: ")
    assert error_of("resolve_signal", "{% if %}")["is_resolve_signal"] is False


def test_preview_a_proposed_set_of_templates(client, prometheus):
    proposed = {
        "grouping_key": "{{ payload.groupLabels.alertname }}",
        "web": {"title": "[{{ payload.status }}] {{ payload.groupLabels.alertname }}"},
        "slack": {"title": "{{ web_title }}\nsecond line", "message": None},
    }

    result = preview_ok(client, prometheus, templates=proposed, payload=DISK_FULL)["templates"]

    assert set(result) == {"grouping_key", "web", "slack"}
    assert result["grouping_key"]["grouping_distinction"] == hashlib.md5(b"DiskFull").hexdigest()
    assert result["web"] == {"title": {"preview": "[firing] DiskFull", "is_valid_json_object": False}}
    # The slack title sees the proposed web title; slack titles lose their line breaks, as in OnCall.
    assert result["slack"]["title"]["preview"] == "[firing] DiskFullsecond line"
    assert set(result["slack"]) == {"title", "message"}  # null: the type's default message
    assert result["slack"]["message"]["preview"]


def test_preview_refuses_malformed_requests(client, prometheus):
    cases = [
        {"template_name": "web.subtitle", "template_body": "x", "payload": {}},
        {"template_body": "x", "payload": {}},
        {"template_name": "web.title", "templates": {"web": {"title": "x"}}, "payload": {}},
        {"template_name": "web.title", "template_body": "x", "payload": {}, "alert_id": "A1"},
        {"templates": {"web": {"titel": "x"}}, "payload": {}},
        {"template_name": "web.title", "template_body": 42, "payload": {}},
    ]
    for body in cases:
        response = preview(client, prometheus, **body)
        assert response.status_code == 400, (body, response.get_json())
    assert "template_name" in preview(client, prometheus, **cases[0]).get_json()
    response = client.post(f"/api/v1/integrations/{prometheus['id']}/preview_template", json=[1])
    assert (response.status_code, response.get_json()) == (400, {"detail": "A JSON object is expected."})
    response = client.post("/api/v1/integrations/CNOTEXISTING1/preview_template", json={})
    assert response.status_code == 404


def test_viewer_may_preview_but_only_editors_send_demo_alerts(app, runtime, client, prometheus):
    viewer = client_with_role(app, runtime, "viewer")
    editor = client_with_role(app, runtime, "editor")

    assert preview_ok(viewer, prometheus, template_name="web.title", template_body="hi", payload={})["preview"] == "hi"
    response = send_demo(viewer, prometheus)
    assert (response.status_code, response.get_json()) == (403, NO_PERMISSION)
    assert groups_of(client, prometheus["id"]) == []

    response = send_demo(editor, prometheus)
    assert (response.status_code, response.get_json()) == (200, {})
    wait_for_groups(client, prometheus["id"], 1)


# --- send_demo_alert ----------------------------------------------------------------------------


def test_demo_alerts_never_group(client, prometheus):
    example = INTEGRATION_TYPES["alertmanager"].example_payload

    for _ in range(2):
        response = client.post(f"/api/v1/integrations/{prometheus['id']}/send_demo_alert")  # no body
        assert (response.status_code, response.get_json()) == (200, {})
    demos = wait_for_groups(client, prometheus["id"], 2)
    assert [g["alerts_count"] for g in demos] == [1, 1]

    # A real alert with the very same payload (same grouping key) opens its own group and is joined
    # by the next real one; a demo sent afterwards still stays alone.
    send(client, prometheus, example)
    wait_for_groups(client, prometheus["id"], 3)
    send(client, prometheus, example)
    assert send_demo(client, prometheus).status_code == 200
    groups = wait_for_groups(client, prometheus["id"], 4)  # ingest is in order: the 2nd real alert is in
    assert sorted(g["alerts_count"] for g in groups) == [1, 1, 1, 2]
    assert len({g["title"] for g in groups}) == 1  # all four rendered from the same payload


def test_demo_alert_with_a_given_payload(client, make_integration):
    hooks = make_integration("formatted_webhook")

    assert send_demo(client, hooks, payload={"alert_uid": "1", "title": "Rehearsal"}).status_code == 200
    assert send_demo(client, hooks, payload={"alert_uid": "1", "title": "Rehearsal"}).status_code == 200
    send(client, hooks, {"alert_uid": "1", "title": "Rehearsal"})

    groups = wait_for_groups(client, hooks["id"], 3)
    assert {g["title"] for g in groups} == {"Rehearsal"}
    assert [g["alerts_count"] for g in groups] == [1, 1, 1]

    response = client.post(
        f"/api/v1/integrations/{hooks['id']}/send_demo_alert",
        data=b'{"payload": {"value": NaN}}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.get_json()["detail"].startswith("The payload cannot be stored")


def test_demo_alert_needs_an_example_payload(client, make_integration, monkeypatch):
    hooks = make_integration("webhook")
    without_example = dataclasses.replace(INTEGRATION_TYPES["webhook"], example_payload=None)
    monkeypatch.setitem(INTEGRATION_TYPES, "webhook", without_example)

    response = send_demo(client, hooks)

    assert (response.status_code, response.get_json()) == (
        400, {"detail": "Demo alerts are not available for this integration type"},
    )  # fmt: skip
    assert client.post("/api/v1/integrations/CNOTEXISTING1/send_demo_alert").status_code == 404
