"""Outgoing webhooks through the API, on both backends: OnCall's shapes, filters and texts, who may
change what, secrets never shown, hostile bodies refused with a clear 400, the responses a
webhook got (recorded once per attempt, newest first, the last 100), what the delivery side reads
(the webhooks an event fires, other webhooks' responses), the read model rebuilt from the events,
and every operation answering as its OpenAPI document says."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
import schemathesis
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import web.api.webhooks  # registers the routes, also before web/api/__init__.py imports the module
from domain.applications import Configuration
from domain.webhooks import MASK, ResponseRecord, WebhookCommands, webhooks_for
from projections.webhooks import (
    KEPT_RESPONSES,
    WebhooksView,
    latest_responses,
    webhooks_to_match,
)
from tests.integration.test_users_and_teams import make_team, token_client
from tocsin.cli import create_token

WEBHOOKS = "/api/v1/webhooks/"
FORBIDDEN = (403, {"detail": "You do not have permission to perform this action."})
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TRIGGERS = ("escalation", "alert group created", "acknowledge", "resolve", "silence", "unsilence", "unresolve",
            "unacknowledge", "status change", "personal notification")  # fmt: skip


def webhooks_runtime(settings, monkeypatch):
    """The runtime with the webhook commands and view, also before the composition root has them."""
    from tocsin.cli import migrate
    from tocsin.runtime import Runtime

    if not issubclass(Configuration, WebhookCommands):
        for name, value in vars(WebhookCommands).items():
            if not name.startswith("__"):
                monkeypatch.setattr(Configuration, name, value, raising=False)
    migrate(settings)
    rt = Runtime(settings)
    views = rt.runners["config"].projections
    if not any(isinstance(view, WebhooksView) for view in views):
        views.append(WebhooksView())
    rt.start()
    yield rt
    rt.close()


@pytest.fixture
def runtime(settings, monkeypatch):
    yield from webhooks_runtime(settings, monkeypatch)


def make_webhook(client, **fields) -> dict:
    body = {"name": "Tickets", "url": "https://tickets.example.com/{{ alert_group_id }}", "http_method": "POST",
            "trigger_type": "alert group created", **fields}  # fmt: skip
    response = client.post(WEBHOOKS, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def webhook_uuid(runtime, webhook: dict) -> UUID:
    return UUID(runtime.db.query_one("SELECT uuid FROM webhooks WHERE id = %s", (webhook["id"],))["uuid"])


def as_role(app, runtime, role: str):
    return token_client(app, create_token(runtime, f"{role}-caller", role))


# --- OnCall's shapes ------------------------------------------------------------------------------


def test_a_webhook_in_oncalls_shape_with_secrets_masked(client, runtime, make_integration):
    team = make_team(client, "SRE")
    integration = make_integration("alertmanager", name="Prometheus")
    created = make_webhook(
        client, name="Jira", team=team["id"], data='{"summary": "{{ alert_group.title }}"}', username="bot",
        password="pa55", authorization_header="Token abc", trigger_template="{{ alert_payload.status == 'firing' }}",
        headers='{"X-Source": "tocsin"}', forward_all=False, http_method="PUT", trigger_type="resolve",
        integration_filter=[integration["id"]], is_webhook_enabled=False,
    )  # fmt: skip
    assert created == {
        "id": created["id"], "name": "Jira", "is_webhook_enabled": False, "team": team["id"],
        "data": '{"summary": "{{ alert_group.title }}"}', "username": "bot", "password": MASK,
        "authorization_header": MASK, "trigger_template": "{{ alert_payload.status == 'firing' }}",
        "headers": '{"X-Source": "tocsin"}', "url": "https://tickets.example.com/{{ alert_group_id }}",
        "forward_all": False, "http_method": "PUT", "trigger_type": "resolve",
        "integration_filter": [integration["id"]], "preset": None,
    }  # fmt: skip
    assert created["id"].startswith("WH") and len(created["id"]) == 14
    assert client.get(f"{WEBHOOKS}{created['id']}/").get_json() == created
    assert client.get(f"{WEBHOOKS}{created['id']}").get_json() == created  # trailing slash optional

    # The secrets are in the store, for sending; the read model and the API have only the mask.
    settings = runtime.config.webhook_settings(webhook_uuid(runtime, created))
    assert (settings.password, settings.authorization_header) == ("pa55", "Token abc")
    row = runtime.db.query_one("SELECT * FROM webhooks WHERE id = %s", (created["id"],))
    assert "pa55" not in json.dumps(row) and "Token abc" not in json.dumps(row)


def test_oncalls_defaults_and_every_trigger_type(client):
    for trigger in TRIGGERS:
        webhook = make_webhook(client, name=f"on {trigger}", trigger_type=trigger)
        assert webhook["trigger_type"] == trigger
    assert {key: webhook[key] for key in ("is_webhook_enabled", "forward_all", "team", "data", "username", "password",
            "authorization_header", "trigger_template", "headers", "integration_filter")} == {
        "is_webhook_enabled": True, "forward_all": True, "team": None, "data": None, "username": None,
        "password": None, "authorization_header": None, "trigger_template": None, "headers": None,
        "integration_filter": None,
    }  # fmt: skip


def test_list_in_creation_order_with_oncalls_filters_and_pages(client):
    team = make_team(client, "Payments")
    first = make_webhook(client, name="b-first")
    second = make_webhook(client, name="a-second", team=team["id"])
    third = make_webhook(client, name="c-third")
    page = client.get(WEBHOOKS).get_json()
    assert [w["id"] for w in page["results"]] == [first["id"], second["id"], third["id"]]
    assert (page["count"], page["page_size"], page["current_page_number"], page["total_pages"]) == (3, 50, 1, 1)
    assert [w["id"] for w in client.get(f"{WEBHOOKS}?name=a-second").get_json()["results"]] == [second["id"]]
    assert client.get(f"{WEBHOOKS}?name=A-SECOND").get_json()["results"] == []  # exact, as OnCall's
    assert [w["id"] for w in client.get(f"{WEBHOOKS}?team_id={team['id']}").get_json()["results"]] == [second["id"]]
    assert [w["id"] for w in client.get(f"{WEBHOOKS}?team_id=null").get_json()["results"]] == [first["id"], third["id"]]
    paged = client.get(f"{WEBHOOKS}?perpage=2&page=2").get_json()
    assert [w["id"] for w in paged["results"]] == [third["id"]]
    assert paged["previous"] == "http://tocsin.test/api/v1/webhooks/?perpage=2&page=1"


def test_updates_change_only_what_is_sent_and_the_mask_keeps_a_secret(client, runtime):
    webhook = make_webhook(client, password="old", username="bot", authorization_header="Bearer x")
    uuid = webhook_uuid(runtime, webhook)
    path = f"{WEBHOOKS}{webhook['id']}/"

    changed = client.patch(path, json={"password": MASK, "authorization_header": MASK, "http_method": "GET"})
    assert changed.status_code == 200, changed.get_json()
    assert {**webhook, "http_method": "GET"} == changed.get_json()
    assert runtime.config.webhook_settings(uuid).password == "old"

    put = client.put(path, json={"password": "new", "authorization_header": None, "trigger_type": "status change",
                                 "forward_whole_payload": False})  # fmt: skip
    assert put.status_code == 200
    shown = put.get_json()
    assert (shown["password"], shown["authorization_header"], shown["trigger_type"], shown["forward_all"]) == (
        MASK, None, "status change", False)
    settings = runtime.config.webhook_settings(uuid)
    assert (settings.password, settings.authorization_header, settings.http_method) == ("new", None, "GET")

    assert client.patch(path, json={"data": None, "integration_filter": None}).status_code == 200
    assert client.patch(path, json={}).get_json() == shown  # nothing sent, nothing changed


def test_a_deleted_teams_webhooks_belong_to_no_team(client):
    team = make_team(client, "Short-lived")
    webhook = make_webhook(client, team=team["id"])
    assert client.delete(f"/api/v1/teams/{team['id']}/").status_code == 204
    assert client.get(f"{WEBHOOKS}{webhook['id']}/").get_json() == {**webhook, "team": None}
    assert [w["id"] for w in client.get(f"{WEBHOOKS}?team_id=null").get_json()["results"]] == [webhook["id"]]
    refused = client.patch(f"{WEBHOOKS}{webhook['id']}/", json={"team": team["id"]})
    assert (refused.status_code, refused.get_json()) == (400, {"team": [f'Invalid pk "{team["id"]}" - object does not exist.']})


def test_delete_answers_204_then_404_and_frees_the_name(client):
    webhook = make_webhook(client, name="Gone")
    assert client.delete(f"{WEBHOOKS}{webhook['id']}/").status_code == 204
    for answer in (client.get(f"{WEBHOOKS}{webhook['id']}/"), client.delete(f"{WEBHOOKS}{webhook['id']}/"),
                   client.patch(f"{WEBHOOKS}{webhook['id']}/", json={"name": "x"}),
                   client.get(f"{WEBHOOKS}{webhook['id']}/responses")):  # fmt: skip
        assert (answer.status_code, answer.get_json()) == (404, {"detail": "Not found."})
    assert client.get(WEBHOOKS).get_json()["count"] == 0
    assert make_webhook(client, name="Gone")["id"] != webhook["id"]


# --- OnCall's refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, answer",
    [
        ({}, {"name": ["This field is required."], "url": ["This field is required."],
              "http_method": ["This field is required."], "trigger_type": ["This field is required."]}),
        ({"trigger_type": "acknowledged"}, {"detail": f"trigger_type must one of {list(TRIGGERS)}"}),
        ({"trigger_type": 3, "name": None}, {"detail": f"trigger_type must one of {list(TRIGGERS)}"}),
        ({"trigger_type": None}, {"trigger_type": ["This field may not be null."]}),
        ({"http_method": "HEAD"}, {"http_method": ["Must be one of ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']"]}),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": "n" * 101}, {"name": ["Ensure this field has no more than 100 characters."]}),
        ({"name": None}, {"name": ["This field may not be null."]}),
        ({"url": ""}, {"url": ["This field may not be blank."]}),
        ({"url": "https://x/{{ }}"}, {"url": ["Template Error: Expected an expression, got 'end of print statement'"]}),
        ({"data": "{{ payload|nosuchfilter }}"}, {"data": ["Template Error: No filter named 'nosuchfilter'."]}),
        ({"headers": "{% if %}"}, {"headers": ["Template Error: Expected an expression, got 'end of statement block'"]}),
        ({"trigger_template": "{{ x"}, {"trigger_template": ["Template Error: unexpected end of template, expected 'end of print statement'."]}),
        ({"integration_filter": ["CNOSUCHINTEGR"]}, {"integration_filter": ["integration_filter must be a list of valid integration ids"]}),
        ({"integration_filter": "C123"}, {"integration_filter": ["integration_filter must be a list of valid integration ids"]}),
        ({"integration_filter": [{"id": 1}]}, {"integration_filter": ["integration_filter must be a list of valid integration ids"]}),
        ({"team": "TNOSUCHTEAM12"}, {"team": ['Invalid pk "TNOSUCHTEAM12" - object does not exist.']}),
        ({"preset": "simple_webhook"}, {"preset": ["Preset webhooks must be modified through web UI"]}),
        ({"preset": None}, {"preset": ["Preset webhooks must be modified through web UI"]}),
        ({"forward_all": None}, {"forward_all": ["This field may not be null."]}),
        ({"is_webhook_enabled": "maybe"}, {"is_webhook_enabled": ["Must be a valid boolean."]}),
        ({"password": "p" * 1001}, {"password": ["Ensure this field has no more than 1000 characters."]}),
        ({"authorization_header": "a" * 2001}, {"authorization_header": ["Ensure this field has no more than 2000 characters."]}),
    ],
)  # fmt: skip
def test_creation_refusals_use_oncalls_texts(client, body, answer):
    base = {"name": "Tickets", "url": "https://t.example.com/", "http_method": "POST", "trigger_type": "resolve"}
    response = client.post(WEBHOOKS, json={**base, **body} if body else {})
    assert (response.status_code, response.get_json()) == (400, answer)
    assert client.get(WEBHOOKS).get_json()["count"] == 0


def test_names_are_unique_regardless_of_case(client):
    make_webhook(client, name="Tickets")
    other = make_webhook(client, name="Other")
    refused = (400, {"non_field_errors": ["The fields name, organization must make a unique set."]})
    answer = client.post(WEBHOOKS, json={"name": "TICKETS", "url": "https://x/", "http_method": "GET",
                                         "trigger_type": "resolve"})  # fmt: skip
    assert (answer.status_code, answer.get_json()) == refused
    answer = client.patch(f"{WEBHOOKS}{other['id']}/", json={"name": "tickets"})
    assert (answer.status_code, answer.get_json()) == refused


def test_an_update_refuses_blank_texts_as_oncall_does(client):
    webhook = make_webhook(client)
    path = f"{WEBHOOKS}{webhook['id']}/"
    for name in ("username", "password", "authorization_header", "headers", "data", "trigger_template", "url"):
        answer = client.patch(path, json={name: " "})
        assert (answer.status_code, answer.get_json()) == (400, {name: ["This field may not be blank."]}), name
    assert client.get(path).get_json() == webhook


def test_viewers_and_editors_read_and_only_admins_write(app, client, runtime):
    webhook = make_webhook(client, password="secret")
    for role in ("viewer", "editor"):
        caller = as_role(app, runtime, role)
        assert caller.get(WEBHOOKS).get_json()["results"] == [webhook]
        assert caller.get(f"{WEBHOOKS}{webhook['id']}/responses").status_code == 200
        for answer in (caller.post(WEBHOOKS, json={"name": "x"}),
                       caller.patch(f"{WEBHOOKS}{webhook['id']}/", json={"name": "y"}),
                       caller.put(f"{WEBHOOKS}{webhook['id']}/", json={"name": "y"}),
                       caller.delete(f"{WEBHOOKS}{webhook['id']}/")):  # fmt: skip
            assert (answer.status_code, answer.get_json()) == FORBIDDEN, role
    stranger = token_client(app, "not-a-token")
    assert (stranger.get(WEBHOOKS).status_code, stranger.get(WEBHOOKS).get_json()) == (403, {"detail": "Invalid token."})
    assert client.get(f"{WEBHOOKS}{webhook['id']}/").get_json() == webhook


@pytest.mark.parametrize(
    "body, answer",
    [
        ({"name": "a\x00b"}, {"name": ["Null characters are not allowed.", "Control characters are not allowed."]}),
        ({"url": "https://x/\ud800"}, {"url": ["Surrogate characters are not allowed: U+D800."]}),
        ({"data": "\x00"}, {"data": ["Null characters are not allowed."]}),
        ({"name": "line\nbreak"}, {"name": ["Control characters are not allowed."]}),
        ({"name": ["a"]}, {"name": ["Not a valid string."]}),
        ({"is_webhook_enabled": 10**400}, {"is_webhook_enabled": ["Must be a valid boolean."]}),
        ({"integration_filter": ["C"] * 1001}, {"integration_filter": ["integration_filter must be a list of valid integration ids"]}),
        ({"url": "https://x/" + "{{ a }}" * 10_000}, {"url": ["Template Error: Template exceeds length limit (70010 > 50000)"]}),
    ],
)  # fmt: skip
def test_hostile_fields_are_refused_with_a_clear_400(client, body, answer):
    base = {"name": "Tickets", "url": "https://t.example.com/", "http_method": "POST", "trigger_type": "resolve"}
    response = client.post(WEBHOOKS, json={**base, **body})
    assert (response.status_code, response.get_json()) == (400, answer)


def test_hostile_bodies_are_refused_with_a_clear_400(client):
    nested = "[" * 5000 + "]" * 5000
    for data in (nested, '{"name": ' + nested + "}", "not json", "[1, 2]", "null"):
        response = client.post(WEBHOOKS, data=data, content_type="application/json")
        assert (response.status_code, response.get_json()) == (400, {"detail": "A JSON object is expected."}), data[:20]
    not_a_number = client.post(WEBHOOKS, data='{"name": NaN, "is_webhook_enabled": Infinity}', content_type="application/json")
    assert not_a_number.status_code == 400
    assert not_a_number.get_json()["name"] == ["Not a valid string."]
    webhook = make_webhook(client)
    response = client.patch(f"{WEBHOOKS}{webhook['id']}/", data=nested, content_type="application/json")
    assert (response.status_code, response.get_json()) == (400, {"detail": "A JSON object is expected."})
    assert client.get(f"{WEBHOOKS}{'x' * 5000}/").status_code == 404


# --- responses ------------------------------------------------------------------------------------


def record(runtime, webhook: dict, attempt: str, at: datetime, **fields) -> int | None:
    values = {"trigger_type": "alert group created", "alert_group_id": "I1", "url": "https://tickets.example.com/I1",
              "request_headers": json.dumps({"Authorization": MASK}), "request_data": '{"a": 1}', "status_code": 201,
              "content": '{"id": "T-7"}', "event_data": '{"event": {"type": "alert group created"}}', **fields}  # fmt: skip
    position = runtime.config.record_webhook_response(webhook_uuid(runtime, webhook), attempt,
                                                      ResponseRecord(timestamp=at, **values))  # fmt: skip
    runtime.wait_for("config", position)
    return position


def test_responses_in_oncalls_shape_newest_first_and_recorded_once_per_attempt(client, runtime):
    webhook = make_webhook(client)
    other = make_webhook(client, name="Other")
    assert record(runtime, webhook, "a-1", NOW) is not None
    assert record(runtime, webhook, "a-1", NOW) is None  # a redelivery of the same attempt
    record(runtime, webhook, "a-2", NOW + timedelta(seconds=1), status_code=None, content="refused: private address",
           trigger_type="acknowledge")  # fmt: skip
    record(runtime, other, "b-1", NOW)

    page = client.get(f"{WEBHOOKS}{webhook['id']}/responses").get_json()
    assert (page["count"], page["page_size"]) == (2, 50)
    assert page["results"] == [
        {"timestamp": "2026-03-02T09:00:01.000000Z", "url": "https://tickets.example.com/I1", "request_trigger": None,
         "request_headers": '{"Authorization": "****************"}', "request_data": '{"a": 1}', "status_code": None,
         "content": "refused: private address", "event_data": '{"event": {"type": "alert group created"}}'},
        {"timestamp": "2026-03-02T09:00:00.000000Z", "url": "https://tickets.example.com/I1", "request_trigger": None,
         "request_headers": '{"Authorization": "****************"}', "request_data": '{"a": 1}', "status_code": 201,
         "content": '{"id": "T-7"}', "event_data": '{"event": {"type": "alert group created"}}'},
    ]  # fmt: skip
    assert client.get(f"{WEBHOOKS}{other['id']}/responses").get_json()["count"] == 1


def test_the_last_responses_are_kept_and_each_webhooks_latest_per_alert_group(client, runtime):
    webhook = make_webhook(client)
    other = make_webhook(client, name="Other")
    for n in range(KEPT_RESPONSES + 5):
        record(runtime, webhook, f"a-{n}", NOW + timedelta(seconds=n), alert_group_id="I1" if n == 0 else "I2",
               content=json.dumps({"n": n}))  # fmt: skip
    record(runtime, other, "b-1", NOW, alert_group_id="I2", content="plain text")
    page = client.get(f"{WEBHOOKS}{webhook['id']}/responses?perpage=1000").get_json()
    assert page["count"] == KEPT_RESPONSES
    assert [json.loads(r["content"])["n"] for r in page["results"]] == list(range(KEPT_RESPONSES + 4, 4, -1))

    # What other webhooks' templates see as ``responses``: each one's latest for the alert group.
    assert latest_responses(runtime.db, "I2") == {webhook["id"]: {"n": KEPT_RESPONSES + 4}, other["id"]: "plain text"}
    assert latest_responses(runtime.db, "I2", except_webhook_id=other["id"]) == {webhook["id"]: {"n": KEPT_RESPONSES + 4}}
    assert latest_responses(runtime.db, "I1") == {webhook["id"]: {"n": 0}}  # no longer listed, still the latest


def test_the_delivery_side_reads_which_webhooks_an_event_fires(client, runtime, make_integration):
    mine = make_integration("alertmanager", name="Mine")
    theirs = make_integration("alertmanager", name="Theirs")
    filtered = make_webhook(client, name="filtered", trigger_type="acknowledge", integration_filter=[mine["id"]],
                            password="pw", username="u")  # fmt: skip
    changes = make_webhook(client, name="changes", trigger_type="status change")
    make_webhook(client, name="off", trigger_type="acknowledge", is_webhook_enabled=False)
    client.delete(f"{WEBHOOKS}{make_webhook(client, name='deleted', trigger_type='acknowledge')['id']}/")
    webhooks = webhooks_to_match(runtime.db)
    mine_uuid = UUID(runtime.db.query_one("SELECT uuid FROM integrations WHERE id = %s", (mine["id"],))["uuid"])
    theirs_uuid = UUID(runtime.db.query_one("SELECT uuid FROM integrations WHERE id = %s", (theirs["id"],))["uuid"])
    assert [w.public_id for w in webhooks_for("acknowledge", mine_uuid, webhooks)] == [filtered["id"], changes["id"]]
    assert [w.public_id for w in webhooks_for("acknowledge", theirs_uuid, webhooks)] == [changes["id"]]
    # Read models hold the mask only; the configuration store has the secret to send with.
    (from_view,) = [w for w in webhooks if w.public_id == filtered["id"]]
    assert from_view.password == MASK
    assert runtime.config.webhook_settings(from_view.id).password == "pw"


def test_the_read_model_is_rebuilt_from_the_events(client, runtime, make_integration):
    integration = make_integration("alertmanager", name="Prometheus")
    webhook = make_webhook(client, password="pw", integration_filter=[integration["id"]])
    client.patch(f"{WEBHOOKS}{webhook['id']}/", json={"name": "Renamed", "headers": '{"X": "1"}'})
    client.delete(f"{WEBHOOKS}{make_webhook(client, name='gone')['id']}/")
    for n in range(3):
        record(runtime, webhook, f"a-{n}", NOW + timedelta(seconds=n))
    tables = ("webhooks", "webhook_responses", "webhook_last_responses")

    def rows() -> dict:
        return {table: runtime.db.query(f"SELECT * FROM {table} ORDER BY 1, 2") for table in tables}

    live = rows()
    runtime.rebuild_read_models()
    assert rows() == live and len(live["webhook_responses"]) == 3


# --- the OpenAPI document -------------------------------------------------------------------------


def webhooks_document() -> dict:
    from web.api.openapi import _with_common_errors
    from web.api.schemas import ErrorSchema

    spec = APISpec(title="webhooks", version="v1", openapi_version="3.0.3", plugins=[MarshmallowPlugin()],
                   components={"securitySchemes": {"token": {"type": "apiKey", "in": "header",
                                                             "name": "Authorization"}}},
                   security=[{"token": []}])  # fmt: skip
    spec.components.schema("Error", schema=ErrorSchema)
    web.api.webhooks.add_to_spec(spec)
    return _with_common_errors(spec.to_dict())


FUZZ_SETTINGS = hypothesis_settings(
    max_examples=12, derandomize=True, database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.timeout(300)
def test_every_webhook_operation_answers_as_its_document_says(app, admin_token, client):
    document = webhooks_document()
    assert set(document["paths"]) == {"/api/v1/webhooks/", "/api/v1/webhooks/{id}/", "/api/v1/webhooks/{id}/responses"}
    schema = schemathesis.openapi.from_dict(document)
    schema.app = app
    webhook = make_webhook(client, name="Fuzzed", password="pw")
    operations = sorted((result.ok() for result in schema.get_all_operations()),
                        key=lambda operation: operation.method.upper() == "DELETE")  # fmt: skip
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            for path_parameters in (None, {"id": webhook["id"]} if "{id}" in operation.path else None):

                @FUZZ_SETTINGS
                @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
                def check(case):
                    case.call_and_validate(headers={"Authorization": admin_token}, checks=CHECKS)

                check()
