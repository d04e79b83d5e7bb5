"""Outgoing webhooks in the domain: which webhooks an event fires, OnCall's template context, the
request a webhook renders (OnCall's example context and its test cases: trigger template, URL,
headers, data, forward_all, errors with OnCall's messages), and the commands on an in-memory
event store (names, secrets, responses recorded once per attempt)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError, Application

from domain.applications import Configuration
from domain.templating import apply_template
from domain.users import NameTaken
from domain.webhooks import (
    MASK,
    PERMANENT,
    PREFIX_WEBHOOK,
    SENT,
    TRIGGER_TYPES,
    NotTriggered,
    RequestFailed,
    ResponseRecord,
    WebhookCommands,
    WebhookOutcome,
    WebhookRequest,
    WebhookSettings,
    event_user,
    json_escaped,
    render_outcome,
    render_request,
    timeline_action,
    webhook_context,
    webhooks_for,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ADMIN = event_user("UVMX6YI9VY9PV", "admin", "admin@localhost")

# OnCall's documented example of what webhook templates see ("Outgoing webhook templates"), as
# the public API shows the alert group and the integration.
ALERT_GROUP = {
    "id": "I6HNZGUFG4K11", "integration_id": "CZ7URAT4V3QF2", "route_id": "RKHXJKVZYYVST", "alerts_count": 1,
    "state": "resolved", "created_at": "2023-04-19T21:53:48.231148Z", "resolved_at": "2023-04-19T21:59:21.714058Z",
    "acknowledged_at": "2023-04-19T21:54:39.029347Z", "title": "Incident",
    "permalinks": {"slack": None, "telegram": None,
                   "web": "https://oncall.example.com/a/grafana-oncall-app/alert-groups/I6HNZGUFG4K11"},
    "labels": [{"key": {"id": "urgency", "name": "urgency"}, "value": {"id": "3", "name": "3"}}],
}  # fmt: skip
ALERT_PAYLOAD = {
    "endsAt": "0001-01-01T00:00:00Z", "labels": {"region": "eu-1", "alertname": "TestAlert"}, "status": "firing",
    "startsAt": "2018-12-25T15:47:47.377363608Z",
    "annotations": {"description": "This alert was sent by user for the demonstration purposes"}, "generatorURL": "",
}  # fmt: skip
INTEGRATION = {"id": "CZ7URAT4V3QF2", "type": "webhook", "name": "Main Integration - Webhook", "team": "Webhooks Demo"}
RESPONSES = {"WHP936BM1GPVHQ": {"id": "7Qw7TbPmzppRnhLvK3AdkQ", "created_at": "15:53:50", "status": "new",
                                "content": {"message": "Ticket created!", "region": "eu"}}}  # fmt: skip


def example_context(trigger: str = "resolve", **changes) -> dict:
    values = {
        "alert_group": ALERT_GROUP, "integration": INTEGRATION, "alert_payload": ALERT_PAYLOAD,
        "webhook": {"id": "WH9NSKXWPXSNY3", "name": "Demo Webhook"}, "user": ADMIN, "acknowledged_by": ADMIN,
        "resolved_by": ADMIN, "responses": RESPONSES,
    }  # fmt: skip
    return webhook_context(trigger, **{**values, **changes})


def hook(**fields) -> WebhookSettings:
    values = {"name": "Demo", "trigger_type": "resolve", "http_method": "POST", "url": "https://example.com/hook",
              "forward_all": False, **fields}  # fmt: skip
    return WebhookSettings(id=fields.pop("id", uuid4()), **values)


# --- triggers and which webhooks fire -------------------------------------------------------------


def test_trigger_types_are_oncalls_public_names():
    assert TRIGGER_TYPES == (
        "escalation", "alert group created", "acknowledge", "resolve", "silence", "unsilence", "unresolve",
        "unacknowledge", "status change", "personal notification",
    )  # fmt: skip


def test_an_event_fires_enabled_webhooks_of_its_trigger_and_status_change_webhooks_for_actions():
    on_ack = hook(name="ack", trigger_type="acknowledge")
    on_any_change = hook(name="change", trigger_type="status change")
    on_created = hook(name="created", trigger_type="alert group created")
    disabled = hook(name="off", trigger_type="acknowledge", is_webhook_enabled=False)
    webhooks = [on_ack, on_any_change, on_created, disabled]

    assert webhooks_for("acknowledge", uuid4(), webhooks) == [on_ack, on_any_change]
    for action in ("resolve", "silence", "unsilence", "unresolve", "unacknowledge"):
        assert webhooks_for(action, uuid4(), webhooks) == [on_any_change], action
    # Creation is not a status change (OnCall's STATUS_CHANGE_TRIGGERS).
    assert webhooks_for("alert group created", uuid4(), webhooks) == [on_created]
    with pytest.raises(ValueError):
        webhooks_for("status change", uuid4(), webhooks)  # a webhook's trigger, never an event's


def test_the_integration_filter_lets_only_its_integrations_through():
    mine, other = uuid4(), uuid4()
    filtered = hook(trigger_type="resolve", integration_filter=(mine,))
    everyone = hook(trigger_type="resolve")
    assert webhooks_for("resolve", mine, [filtered, everyone]) == [filtered, everyone]
    assert webhooks_for("resolve", other, [filtered, everyone]) == [everyone]


# --- OnCall's context -----------------------------------------------------------------------------


def test_the_context_is_oncalls_documented_example():
    context = example_context()
    assert context == {
        "event": {"type": "resolve", "time": "2023-04-19T21:59:21.714058+00:00"},
        "user": ADMIN,
        "alert_group": {**ALERT_GROUP, "labels": {"urgency": "3"}},
        "alert_group_id": "I6HNZGUFG4K11",
        "alert_payload": ALERT_PAYLOAD,
        "integration": {**INTEGRATION, "labels": {}},
        "notified_users": [],
        "users_to_be_notified": [],
        "responses": RESPONSES,
        "webhook": {"id": "WH9NSKXWPXSNY3", "name": "Demo Webhook", "labels": {}},
        "alert_group_acknowledged_by": ADMIN,
        "alert_group_resolved_by": ADMIN,
    }
    json.dumps(context)  # forward_all sends it as it is


def test_each_event_shows_its_own_time_and_a_silence_its_end():
    group = {**ALERT_GROUP, "silenced_at": "2023-04-19T22:00:00.000000Z", "silenced_until": "2023-04-19T23:00:00.000000Z"}
    assert example_context("alert group created")["event"] == {"type": "alert group created",
                                                               "time": "2023-04-19T21:53:48.231148+00:00"}  # fmt: skip
    assert example_context("acknowledge")["event"]["time"] == "2023-04-19T21:54:39.029347+00:00"
    assert example_context("silence", alert_group=group)["event"] == {
        "type": "silence", "time": "2023-04-19T22:00:00.000000+00:00", "until": "2023-04-19T23:00:00.000000+00:00"}
    assert example_context("escalation")["event"] == {"type": "escalation"}
    assert example_context("unacknowledge", at=NOW)["event"] == {"type": "unacknowledge", "time": NOW.isoformat()}
    personal = example_context("personal notification", personal_context={"channel": "#sre"})
    assert personal["event"] == {"type": "personal notification", "user": {"channel": "#sre"}}


def test_users_are_listed_once_and_responses_only_when_there_are_some():
    bob = event_user("U2", "bob", None)
    context = example_context(responses={}, notified_users=[bob, ADMIN, bob], users_to_be_notified=[ADMIN, ADMIN])
    assert context["notified_users"] == [bob, ADMIN]
    assert context["users_to_be_notified"] == [ADMIN]
    assert "responses" not in context


# --- rendering: OnCall's cases --------------------------------------------------------------------


def test_oncalls_example_renders_url_headers_and_json_data():
    webhook = hook(
        url="https://example.com/{{ alert_group_id }}/",
        trigger_template="{{ alert_group.integration_id == 'CZ7URAT4V3QF2' }}",
        headers='{"some-header": "{{ alert_group_id }}"}',
        data='{"value": "{{ alert_group_id }}", "name": "{{ alert_payload.labels.alertname }}",'
             ' "message": "{{ responses[\'WHP936BM1GPVHQ\'].content.message }}"}',
    )  # fmt: skip
    request = render_request(webhook, example_context())
    assert request == WebhookRequest(
        method="POST", url="https://example.com/I6HNZGUFG4K11/",
        headers={"some-header": "I6HNZGUFG4K11", "Content-Type": "application/json"},
        body=b'{"value": "I6HNZGUFG4K11", "name": "TestAlert", "message": "Ticket created!"}',
        request_trigger="True",
        request_data='{"value": "I6HNZGUFG4K11", "name": "TestAlert", "message": "Ticket created!"}',
    )  # fmt: skip
    assert request.request_headers == '{"some-header": "I6HNZGUFG4K11", "Content-Type": "application/json"}'


def test_data_that_is_not_json_is_sent_as_utf8_text():
    request = render_request(hook(data="😊 {{ alert_payload.status }}"), example_context())
    assert (request.body, request.request_data) == ("😊 firing".encode(), "😊 firing")
    assert "Content-Type" not in request.headers


def test_forward_all_sends_the_whole_context_and_only_post_put_and_patch_have_a_body():
    context = example_context()
    for method in ("POST", "PUT", "PATCH"):
        request = render_request(hook(http_method=method, forward_all=True, data='{"ignored": 1}'), context)
        assert json.loads(request.body) == context and request.headers == {"Content-Type": "application/json"}
    for method in ("GET", "DELETE", "OPTIONS"):
        request = render_request(hook(http_method=method, forward_all=True, data='{"x": 1}'), context)
        assert (request.method, request.body, request.request_data, request.headers) == (method, None, None, {})


@pytest.mark.parametrize("rendered, fires", [("True", True), ("true", True), ("1", True), ("TRUE", True),
                                             ("False", False), ("ok", False), ("yes", False), ("", False)])  # fmt: skip
def test_the_trigger_template_decides_whether_to_send(rendered, fires):
    """No template fires; a template fires when it renders "true" or "1" (any case), as OnCall's."""
    source = "{{ alert_payload.status[:0] }}" + rendered  # a template, even when it renders nothing
    result = render_request(hook(trigger_template=source), example_context())
    if fires:
        assert isinstance(result, WebhookRequest) and result.request_trigger == rendered
    else:
        assert result == NotTriggered(rendered)
    assert isinstance(render_request(hook(trigger_template=None), example_context()), WebhookRequest)


@pytest.mark.parametrize(
    "field, source, expected",
    [
        ("url", "https://myserver/{{ }}/triggered",
         "URL - Template Error: Expected an expression, got 'end of print statement'"),
        ("url", "https://myserver/{{ alert_payload.labels.nope.deeper }}/",
         "URL - Template Warning: 'dict object' has no attribute 'nope'"),
        ("trigger_template", "{{ }}", "Trigger - Template Error: Expected an expression, got 'end of print statement'"),
        ("headers", '"{{foo|invalid}}"', "Headers - Template Error: No filter named 'invalid'."),
        ("data", "{{ }}", "Data - Template Error: Expected an expression, got 'end of print statement'"),
    ],
)  # fmt: skip
def test_a_template_error_is_recorded_with_oncalls_message(field, source, expected):
    result = render_request(hook(**{field: source}), example_context())
    assert isinstance(result, RequestFailed) and result.error == expected
    shown_in = {"url": "url", "trigger_template": "request_trigger", "headers": "request_headers", "data": "request_data"}
    assert getattr(result, shown_in[field]) == expected


@pytest.mark.parametrize(
    "url, error",
    [("ftp://example.com/x", "URL - Malformed url"), ("https:///nohost", "URL - Malformed url"),
     ("{{ alert_group_id }}", "URL - Malformed url"), ("https://example.com:port/", "URL - Malformed url"),
     ("https://exa mple.com/", "URL - Malformed url"),
     ("http://tocsin.test/integrations/v1/webhook/abc/", "URL - Potential self-reference")],
)  # fmt: skip
def test_a_rendered_url_must_be_http_with_a_host_and_not_tocsin_itself(url, error):
    result = render_request(hook(url=url), example_context(), self_url="http://tocsin.test")
    assert isinstance(result, RequestFailed) and (result.error, result.url) == (error, error)


@pytest.mark.parametrize(
    "headers, error",
    [('["a", "b"]', "Headers - Template did not result in json/dict"),
     ("not json", "Headers - Template did not result in json/dict"),
     ('{"X-A": "1\\r\\nX-Injected: yes"}', "Headers - Header 'X-A' may not contain line breaks or NUL"),
     ('{"Bad Name": "1"}', "Headers - Invalid header name 'Bad Name'"),
     ('{"X-A": {"nested": 1}}', "Headers - Header 'X-A' must be a string or a number")],
)  # fmt: skip
def test_headers_must_be_a_json_object_of_safe_headers(headers, error):
    result = render_request(hook(headers=headers), example_context())
    assert isinstance(result, RequestFailed) and result.error == error
    assert result.url == "https://example.com/hook"  # what was rendered before is recorded too


def test_strings_in_headers_and_data_are_escaped_for_json_and_the_url_sees_them_raw():
    payload = {"text": 'Disk "sda" is full\nit\'s bad', "labels": {"job": "node's", "region": "eu"}}
    context = example_context(alert_payload=payload)
    webhook = hook(
        url="https://example.com/?q={{ alert_payload.text|length }}",
        headers='{"X-Text": "{{ alert_payload.labels.job }}"}',
        data='{"text": "{{ alert_payload.text }}", "labels": "{{ alert_payload.labels }}",'
             ' "tojson": {{ alert_payload.labels | tojson }}}',
    )  # fmt: skip
    request = render_request(webhook, context)
    body = json.loads(request.body)  # valid JSON despite quotes, apostrophes and line breaks
    assert body["text"] == payload["text"]
    assert body["labels"] == "{'job': \"node's\", 'region': 'eu'}"  # OnCall's dict text, quotes escaped
    assert body["tojson"] == {"job": "node's", "region": "eu"}
    assert request.headers["X-Text"] == "node's"
    assert request.url == f"https://example.com/?q={len(payload['text'])}"  # the raw text's length
    assert payload["text"].startswith('Disk "sda"')  # the context itself is not changed


def test_the_authorization_header_replaces_any_and_is_masked_where_shown_and_basic_auth_needs_both():
    webhook = hook(headers='{"authorization": "from template", "X-Id": "{{ alert_group_id }}"}',
                   authorization_header="Bearer s3cret", username="bot", password="pa:ss")  # fmt: skip
    request = render_request(webhook, example_context())
    assert request.headers == {"X-Id": "I6HNZGUFG4K11", "Authorization": "Bearer s3cret"}
    assert json.loads(request.request_headers) == {"X-Id": "I6HNZGUFG4K11", "Authorization": MASK}
    assert request.basic_auth == ("bot", "pa:ss")
    assert render_request(hook(username="bot"), example_context()).basic_auth is None
    shown_only = render_request(hook(headers='{"Authorization": "Token t"}'), example_context())
    assert json.loads(shown_only.request_headers) == {"Authorization": MASK}


def test_settings_with_masked_secrets_cannot_render():
    with pytest.raises(ValueError, match="masked"):
        render_request(hook(password=MASK, username="bot"), example_context())


def test_templates_are_read_only_and_bounded_by_the_renderer_given():
    webhook = hook(data="{{ alert_payload.labels.update({'x': 1}) }}")
    result = render_request(webhook, example_context())
    assert isinstance(result, RequestFailed) and result.error.startswith("Data - Template Error: ")
    assert ALERT_PAYLOAD["labels"] == {"region": "eu-1", "alertname": "TestAlert"}

    def quick(source: str, context: dict) -> str:
        return apply_template(source, time_limit=0.05, **context)

    slow = hook(url="https://example.com/{% for a in alert_payload.many %}{% for b in alert_payload.many %}"
                    "{{ a }}{% endfor %}{% endfor %}")  # fmt: skip
    result = render_request(slow, example_context(alert_payload={"many": list(range(5000))}), quick)
    assert isinstance(result, RequestFailed)
    assert result.error == "URL - Template Error: Template rendering took too long (limit 0.05s)"
    assert render_outcome("{{ }}", {})[0] == "error" and render_outcome("{{ a.b.c }}", {"a": 1})[0] == "warning"


def test_json_escaping_leaves_numbers_and_keys_alone():
    escaped = json_escaped({"a": [1, "x\"y", {"b": None}], "c": True})
    assert escaped == {"a": [1, 'x\\"y', {"b": None}], "c": True}


# --- what a response records ----------------------------------------------------------------------


def test_a_response_records_what_was_sent_and_what_came_back():
    context = example_context()
    request = render_request(hook(authorization_header="Bearer s3cret", data='{"v": 1}'), context)
    answered = ResponseRecord.of(request, WebhookOutcome(SENT, 201, '{"id": "T-1"}'), context=context,
                                 trigger_type="resolve", at=NOW)  # fmt: skip
    assert answered.as_event_data() == {
        "timestamp": NOW, "trigger_type": "resolve", "alert_group_id": "I6HNZGUFG4K11",
        "url": "https://example.com/hook", "request_trigger": None,
        "request_headers": json.dumps({"Authorization": MASK, "Content-Type": "application/json"}),
        "request_data": '{"v": 1}', "status_code": 201, "content": '{"id": "T-1"}', "event_data": json.dumps(context),
    }  # fmt: skip
    assert "s3cret" not in json.dumps(answered.as_event_data(), default=str)

    unreachable = ResponseRecord.of(request, WebhookOutcome(PERMANENT, error="refused: 10.0.0.1 is a private address"),
                                    context=context, trigger_type="resolve", at=NOW)  # fmt: skip
    assert (unreachable.status_code, unreachable.content) == (None, "refused: 10.0.0.1 is a private address")

    failed = render_request(hook(url="{{ }}"), context)
    record = ResponseRecord.of(failed, None, context=context, trigger_type="resolve", at=NOW)
    assert (record.url, record.status_code, record.content) == (failed.error, None, None)


def test_the_timeline_says_what_oncall_says():
    assert timeline_action("Jira", "escalation") == "outgoing webhook `Jira` triggered by escalation"
    assert (timeline_action("Jira", "resolve", "URL - Malformed url")
            == "skipped resolve outgoing webhook `Jira`: URL - Malformed url")  # fmt: skip


def test_big_data_is_cut_in_what_is_recorded():
    context = example_context(alert_payload={"blob": "x" * 60_000})
    request = render_request(hook(data="{{ alert_payload.blob }}"), context)
    record = ResponseRecord.of(request, WebhookOutcome(SENT, 200, ""), context=context, trigger_type="resolve", at=NOW)
    assert len(request.body) == 50_002  # the renderer's own limit: 50,000 and ".."
    assert len(record.request_data) == 50_002 and len(record.event_data) == 50_002


# --- commands on an in-memory store ---------------------------------------------------------------


class Hooks(WebhookCommands, Application):
    """The commands as ``Configuration`` runs them, on the in-memory store."""

    _claim = Configuration._claim


@pytest.fixture
def app():
    return Hooks()


SETTINGS = {"name": "Tickets", "url": "https://example.com/{{ alert_group_id }}", "http_method": "POST",
            "trigger_type": "alert group created"}  # fmt: skip


def test_a_webhook_takes_oncalls_defaults_and_keeps_its_secrets_in_the_store(app):
    webhook_id, position = app.create_webhook({**SETTINGS, "password": "pw", "username": "bot"}, at=NOW)
    assert position is not None
    settings = app.webhook_settings(webhook_id)
    assert settings == WebhookSettings(
        id=webhook_id, name="Tickets", trigger_type="alert group created", http_method="POST",
        url="https://example.com/{{ alert_group_id }}", is_webhook_enabled=True, forward_all=True,
        username="bot", password="pw",
    )  # fmt: skip
    assert settings.public_id.startswith(PREFIX_WEBHOOK) and len(settings.public_id) == 14


def test_changes_record_only_what_differs_and_names_are_unique_regardless_of_case(app):
    first, _ = app.create_webhook(SETTINGS, at=NOW)
    with pytest.raises(NameTaken):
        app.create_webhook({**SETTINGS, "name": "TICKETS"}, at=NOW)
    second, _ = app.create_webhook({**SETTINGS, "name": "Other"}, at=NOW)
    with pytest.raises(NameTaken):
        app.update_webhook(second, {"name": "tickets"})
    assert app.update_webhook(first, {"name": "Tickets", "http_method": "POST"}) is None  # nothing changed
    team, integration = uuid4(), uuid4()
    assert app.update_webhook(first, {"team_id": team, "integration_filter": [integration, integration]})
    assert app.webhook_settings(first).integration_filter == (integration,)
    assert app.webhook_settings(first).team_id == team

    app.delete_webhook(first, at=NOW)
    with pytest.raises(AggregateNotFoundError):
        app.webhook_settings(first)
    with pytest.raises(AggregateNotFoundError):
        app.update_webhook(first, {"name": "x"})
    renamed, _ = app.create_webhook({**SETTINGS, "name": "tickets"}, at=NOW)  # the name is free again
    assert app.webhook_settings(renamed).name == "tickets"


@pytest.mark.parametrize("change", [{"trigger_type": "acknowledged"}, {"http_method": "HEAD"}, {"url": " "},
                                    {"name": ""}, {"colour": "red"}])  # fmt: skip
def test_the_store_refuses_settings_the_api_would_refuse(app, change):
    with pytest.raises(ValueError):
        app.create_webhook({**SETTINGS, **change}, at=NOW)


def test_an_attempt_is_recorded_once_however_often_it_is_delivered(app):
    webhook_id, _ = app.create_webhook(SETTINGS, at=NOW)
    record = ResponseRecord(timestamp=NOW, trigger_type="alert group created", alert_group_id="I1", status_code=200)
    assert app.record_webhook_response(webhook_id, "attempt-1", record) is not None
    assert app.record_webhook_response(webhook_id, "attempt-1", record) is None
    assert app.record_webhook_response(webhook_id, "attempt-2", record) is not None
    assert len(list(app.notification_log.select(start=1, limit=10))) == 4  # webhook, claim, two responses
