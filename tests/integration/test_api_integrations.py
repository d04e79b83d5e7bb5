"""``/api/v1/integrations/`` over HTTP: create, list, update templates, delete; the OpenAPI document.

Every test runs on SQLite and on PostgreSQL with the real workers, and checks what a user sees:
the fields OnCall clients read, the refusal texts, and the effect of templates on new alerts.
"""

from __future__ import annotations

import json
import re

import pytest

from web.api.schemas import CHANNEL_FIELDS
from tests.integration.conftest import groups_of, inbound_path, send, wait_for_groups

BASE = "http://tocsin.test"
AM_INSTANCE_DOWN = "captured/alertmanager/am-02-firing-group-3-alerts.json"
AM_DISK_FULL = "captured/alertmanager/am-01-firing-single.json"
CHANNELS = CHANNEL_FIELDS


def create(client, **body):
    return client.post("/api/v1/integrations/", json=body)


def update(client, integration_id: str, method: str = "put", **body):
    return getattr(client, method)(f"/api/v1/integrations/{integration_id}/", json=body)


def get(client, integration_id: str) -> dict:
    response = client.get(f"/api/v1/integrations/{integration_id}/")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def get_group_title(client, group_id: str) -> str:
    return client.get(f"/api/v1/alert_groups/{group_id}/").get_json()["title"]


def all_templates_default(templates: dict) -> bool:
    top = ("grouping_key", "resolve_signal", "acknowledge_signal", "source_link")
    return all(templates[name] is None for name in top) and all(
        templates[channel] == dict.fromkeys(attrs) for channel, attrs in CHANNELS.items()
    )


# --- create --------------------------------------------------------------------------------------


def test_create_answers_the_integration_in_oncalls_shape(client):
    response = create(client, type="alertmanager", name="Prometheus prod", description_short="Main cluster")

    assert response.status_code == 201
    integration = response.get_json()
    assert re.fullmatch(r"C[A-Z1-9]{12}", integration["id"])
    assert integration["name"] == "Prometheus prod"
    assert integration["description_short"] == "Main cluster"
    assert integration["type"] == "alertmanager"
    assert integration["team_id"] is None
    assert re.fullmatch(rf"{BASE}/integrations/v1/alertmanager/[A-Za-z0-9]+/", integration["link"])
    assert integration["heartbeat"] == {
        "link": integration["link"] + "heartbeat/",
        "timeout_seconds": 600,
        "last_heartbeat_time": None,
        "status": "not_armed",
    }
    assert integration["inbound_email"] is None
    assert all_templates_default(integration["templates"])
    assert integration["default_route"]["id"].startswith("R")
    assert len(integration["default_route"]["id"]) == 13
    assert integration["maintenance_mode"] is None
    assert get(client, integration["id"]) == integration


def test_created_integration_link_receives_alerts_at_once(client):
    integration = create(client, type="formatted_webhook").get_json()

    send(client, integration, {"alert_uid": "1", "title": "Disk full"})

    [group] = wait_for_groups(client, integration["id"], 1)
    assert group["title"] == "Disk full"


def test_name_defaults_to_the_type_title(client):
    integration = create(client, type="webhook").get_json()

    assert integration["name"].startswith("Webhook ")


def test_each_integration_gets_its_own_link(client):
    first = create(client, type="webhook").get_json()
    second = create(client, type="webhook").get_json()

    assert first["id"] != second["id"]
    assert first["link"] != second["link"]


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"type": "no_such_type"}, "Invalid integration type"),
        ({"type": "direct_paging"}, "Direct paging integrations can't be created"),
    ],
)
def test_create_refuses_types_oncall_refuses(client, body, detail):
    response = create(client, **body)

    assert (response.status_code, response.get_json()) == (400, {"detail": detail})
    assert client.get("/api/v1/integrations/").get_json()["count"] == 0


def test_create_without_a_type_is_refused(client):
    response = create(client, name="typeless")

    assert response.status_code == 400
    assert "type" in response.get_json()


def test_create_with_a_non_object_body_is_refused(client):
    response = client.post("/api/v1/integrations/", data="[]", content_type="application/json")

    assert response.status_code == 400


def test_duplicate_name_in_the_same_team_is_refused(client):
    assert create(client, type="webhook", name="Backups").status_code == 201

    response = create(client, type="alertmanager", name="Backups")

    assert (response.status_code, response.get_json()) == (
        400,
        {"detail": "An integration with this name already exists for this team"},
    )
    # Another team may use the name.
    assert create(client, type="webhook", name="Backups", team_id="TTEAMB").status_code == 201


# --- list and get --------------------------------------------------------------------------------


def test_list_filters_by_exact_name(client, make_integration):
    wanted = make_integration("webhook", name="Backups")
    make_integration("webhook", name="Backups 2")
    make_integration("alertmanager", name="Prometheus")

    page = client.get("/api/v1/integrations/?name=Backups").get_json()

    assert page["count"] == 1
    assert [i["id"] for i in page["results"]] == [wanted["id"]]
    assert client.get("/api/v1/integrations/").get_json()["count"] == 3


def test_list_is_in_creation_order_and_paginated(client, make_integration):
    made = [make_integration("webhook", name=f"Hook {n}")["id"] for n in range(3)]

    first = client.get("/api/v1/integrations/?perpage=2").get_json()
    second = client.get(first["next"].removeprefix(BASE)).get_json()

    assert (first["count"], first["total_pages"], first["page_size"]) == (3, 2, 2)
    assert [i["id"] for i in first["results"] + second["results"]] == made


def test_unknown_integration_is_404(client):
    for method in ("get", "put", "delete"):
        response = getattr(client, method)("/api/v1/integrations/CNOSUCHTHING1/", json={"name": "x"})
        assert (response.status_code, response.get_json()) == (404, {"detail": "Not found."}), method


# --- update --------------------------------------------------------------------------------------


def test_update_name_and_web_title_template(client, make_integration):
    integration = make_integration("alertmanager", name="Prometheus")
    title = "{{ payload.commonLabels.alertname }} in {{ payload.commonLabels.datacenter }}"

    response = update(client, integration["id"], name="Prometheus EU", templates={"web": {"title": title}})

    assert response.status_code == 200
    shown = get(client, integration["id"])
    assert response.get_json() == shown
    assert shown["name"] == "Prometheus EU"
    assert shown["templates"]["web"] == {"title": title, "message": None, "image_url": None}
    assert shown["templates"]["slack"]["title"] is None  # other templates keep their defaults
    assert shown["link"] == integration["link"]  # renaming keeps the URL senders use

    send(client, integration, AM_INSTANCE_DOWN)
    [group] = wait_for_groups(client, integration["id"], 1)
    assert group["title"] == "InstanceDown in eu-west-1"


def test_patch_changes_only_what_is_given(client, make_integration):
    integration = make_integration("webhook", name="Hook", description_short="first")
    update(client, integration["id"], templates={"web": {"title": "Custom"}, "grouping_key": "{{ payload.id }}"})

    response = update(client, integration["id"], method="patch", description_short="second")

    assert response.status_code == 200
    shown = get(client, integration["id"])
    assert (shown["name"], shown["description_short"]) == ("Hook", "second")
    assert shown["templates"]["web"]["title"] == "Custom"
    assert shown["templates"]["grouping_key"] == "{{ payload.id }}"


def test_template_with_a_syntax_error_is_refused_and_changes_nothing(client, make_integration):
    integration = make_integration("alertmanager")
    update(client, integration["id"], templates={"web": {"title": "Kept {{ payload.status }}"}})

    response = update(client, integration["id"], name="Renamed", templates={"web": {"title": "{{ payload.status"}})

    assert response.status_code == 400
    errors = json.dumps(response.get_json())
    assert "web.title" in errors  # names the broken field
    shown = get(client, integration["id"])
    assert shown["templates"]["web"]["title"] == "Kept {{ payload.status }}"
    assert shown["name"] == integration["name"]


def test_template_with_a_syntax_error_is_refused_on_create(client):
    response = create(client, type="webhook", templates={"resolve_signal": "{% if %}"})

    assert response.status_code == 400
    assert "resolve_signal" in json.dumps(response.get_json())
    assert client.get("/api/v1/integrations/").get_json()["count"] == 0


def test_null_restores_the_default_template(client, make_integration):
    integration = make_integration("alertmanager")
    update(client, integration["id"], templates={"web": {"title": "Custom: {{ payload.groupLabels.alertname }}"}})
    send(client, integration, AM_INSTANCE_DOWN)
    [custom] = wait_for_groups(client, integration["id"], 1)
    assert custom["title"] == "Custom: InstanceDown"

    response = update(client, integration["id"], templates={"web": {"title": None}})

    assert response.status_code == 200
    assert all_templates_default(get(client, integration["id"])["templates"])
    send(client, integration, AM_DISK_FULL)
    newest, _ = wait_for_groups(client, integration["id"], 2)
    assert newest["title"] == "DiskFull "  # the Alertmanager default again
    assert get_group_title(client, custom["id"]) == "Custom: InstanceDown"  # existing groups keep theirs


def test_null_channel_restores_all_of_its_templates(client, make_integration):
    integration = make_integration("formatted_webhook")
    update(client, integration["id"], templates={"web": {"title": "T", "message": "M"}, "sms": {"title": "S"}})

    update(client, integration["id"], templates={"web": None})

    templates = get(client, integration["id"])["templates"]
    assert templates["web"] == {"title": None, "message": None, "image_url": None}
    assert templates["sms"] == {"title": "S"}


def test_custom_grouping_key_changes_grouping_for_new_alerts(client, make_integration):
    integration = make_integration("webhook")
    # The webhook default groups identical bodies only.
    send(client, integration, {"service": "db", "n": 1})
    send(client, integration, {"service": "db", "n": 2})
    wait_for_groups(client, integration["id"], 2)

    response = update(client, integration["id"], templates={"grouping_key": "{{ payload.service }}"})
    assert response.status_code == 200
    send(client, integration, {"service": "db", "n": 3})
    send(client, integration, {"service": "db", "n": 4})
    send(client, integration, {"service": "web", "n": 5})

    groups = wait_for_groups(client, integration["id"], 4)
    assert sorted(g["alerts_count"] for g in groups) == [1, 1, 1, 2]


def test_custom_resolve_signal_resolves_by_source(client, make_integration):
    integration = make_integration("webhook")
    update(
        client,
        integration["id"],
        templates={"grouping_key": "{{ payload.id }}", "resolve_signal": '{{ payload.status == "fixed" }}'},
    )

    send(client, integration, {"id": "a", "status": "broken"})
    send(client, integration, {"id": "a", "status": "fixed"})

    [group] = wait_for_groups(client, integration["id"], 1, state="resolved")
    assert (group["alerts_count"], group["resolved_by"]) == (2, None)


def test_duplicate_name_is_refused_on_rename(client, make_integration):
    make_integration("webhook", name="Taken")
    other = make_integration("webhook", name="Free")

    response = update(client, other["id"], name="Taken")

    assert (response.status_code, response.get_json()) == (
        400,
        {"detail": "An integration with this name already exists for this team"},
    )
    assert update(client, other["id"], name="Free").status_code == 200  # its own name is fine


# --- delete --------------------------------------------------------------------------------------


def test_delete_stops_the_integration_and_its_link(client, make_integration):
    integration = make_integration("alertmanager")
    send(client, integration, AM_INSTANCE_DOWN)  # the link works (and its token is cached)
    [group] = wait_for_groups(client, integration["id"], 1)

    response = client.delete(f"/api/v1/integrations/{integration['id']}/")

    assert (response.status_code, response.data) == (204, b"")
    assert client.get(f"/api/v1/integrations/{integration['id']}/").status_code == 404
    assert client.get("/api/v1/integrations/").get_json()["count"] == 0
    refused = client.post(inbound_path(integration), json={"after": "delete"})
    assert refused.status_code == 403
    assert refused.get_data(as_text=True) == "Integration key was not found. Permission denied."
    assert client.delete(f"/api/v1/integrations/{integration['id']}/").status_code == 404
    # Its alert groups stay readable, as in OnCall (soft delete).
    assert [g["id"] for g in groups_of(client, integration["id"])] == [group["id"]]


def test_deleted_name_can_be_reused(client, make_integration):
    integration = make_integration("webhook", name="Reused")
    client.delete(f"/api/v1/integrations/{integration['id']}/")

    assert create(client, type="webhook", name="Reused").status_code == 201


# --- OpenAPI -------------------------------------------------------------------------------------


def test_openapi_document_is_served_without_a_token(app):
    response = app.test_client().get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    for path in ("/api/v1/alert_groups/", "/api/v1/integrations/", "/api/v1/alerts/"):
        assert path in document["paths"], path
    assert "post" in document["paths"]["/api/v1/integrations/"]
    assert "post" in document["paths"]["/api/v1/alert_groups/{id}/acknowledge"]


def test_openapi_document_is_valid(client):
    import openapi_spec_validator as validator

    validator.validate(client.get("/api/v1/openapi.json").get_json())



def test_without_an_inbound_domain_an_email_integration_shows_an_address_at_this_host(
    runtime, client, monkeypatch
):
    """The SMTP receiver takes any domain then; the address must still say where to send mail."""
    import smtplib
    import socket
    from dataclasses import replace

    from workers.smtp import SMTPReceiver

    assert runtime.settings.inbound_email_domain is None
    mail = create(client, type="inbound_email", name="Mail").get_json()
    (row,) = runtime.db.query("SELECT token FROM integrations WHERE id = %s", (mail["id"],))
    assert (mail["link"], mail["inbound_email"]) == (None, f"{row['token']}@tocsin.test")

    # `make run` has no host name: an IP address becomes an address literal, which mail takes.
    monkeypatch.setattr(runtime, "settings", replace(runtime.settings, base_url="http://127.0.0.1:8080"))
    address = get(client, mail["id"])["inbound_email"]
    assert address == f"{row['token']}@[127.0.0.1]"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    receiver = SMTPReceiver(runtime, f"127.0.0.1:{port}")
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            message = f"From: cron@example.com\r\nTo: {address}\r\nSubject: Backup failed\r\n\r\nexit 1\r\n"
            smtp.sendmail("cron@example.com", [address], message.encode())
    finally:
        receiver.stop()
    (group,) = wait_for_groups(client, mail["id"], 1)
    assert group["title"] == "Backup failed"
