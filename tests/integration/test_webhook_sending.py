"""Outgoing webhooks sent to a real HTTP server on this machine: the rendered request arrives as
rendered (method, path, headers, credentials, body); the answer is recorded as OnCall records it;
the outgoing-address guard refuses loopback addresses, names that resolve to internal addresses
and redirects to them unless ``TOCSIN_OUTGOING_ALLOW`` lists them, without the refused server
seeing a request; templates render in real render workers under the hard limits; and, on both
backends, a webhook made through the API is sent and its response listed by the API.

Only 127.0.0.0/8 is ever connected to; other internal addresses are tested with a resolver that
answers them and a socket that refuses to connect anywhere else (as the notification senders'
tests do).
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from adapters.http_guard import OutgoingPolicy
from adapters.render_pool import RenderPool
from adapters.webhook_sender import (
    attempt_webhook,
    bounded_renderer,
    send_webhook_request,
)
from domain.webhooks import (
    MASK,
    PERMANENT,
    SENT,
    TRANSIENT,
    NotTriggered,
    RequestFailed,
    WebhookRequest,
    WebhookSettings,
    event_user,
    render_request,
    webhook_context,
)
from tests.integration.test_webhooks_api import (
    make_webhook,
    webhook_uuid,
    webhooks_runtime,
)
from tests.local_servers import LOCAL

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ALICE = event_user("UALICE1234567", "alice", "alice@example.com")
GROUP = {"id": "I6HNZGUFG4K11", "integration_id": "CZ7URAT4V3QF2", "route_id": "RKHXJKVZYYVST", "alerts_count": 1,
         "state": "acknowledged", "created_at": "2026-03-02T08:59:00.000000Z",
         "acknowledged_at": "2026-03-02T09:00:00.000000Z", "acknowledged_by": "UALICE1234567", "title": "DiskFull",
         "labels": []}  # fmt: skip
PAYLOAD = {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db-1"}}
INTEGRATION = {"id": "CZ7URAT4V3QF2", "type": "alertmanager", "name": "Prometheus", "team": None}
# One built-in call that runs for ~20 s and takes ~1.5 GiB (as in test_template_bounds).
SORT_BOMB = "{{ (('a'*9999999)|list)|sort|length }}"


@pytest.fixture
def runtime(settings, monkeypatch):
    yield from webhooks_runtime(settings, monkeypatch)


def context(trigger: str = "acknowledge", **changes) -> dict:
    values = {"alert_group": GROUP, "integration": INTEGRATION, "alert_payload": PAYLOAD, "user": ALICE,
              "acknowledged_by": ALICE, "webhook": {"id": "WHTICKETS1234", "name": "Tickets"}}  # fmt: skip
    return webhook_context(trigger, **{**values, **changes})


def hook(url: str, **fields) -> WebhookSettings:
    return WebhookSettings(**{"id": uuid4(), "name": "Tickets", "trigger_type": "acknowledge", "http_method": "POST",
                              "url": url, "forward_all": False, **fields})  # fmt: skip


# --- what arrives ---------------------------------------------------------------------------------


def test_a_rendered_webhook_arrives_with_its_method_path_headers_credentials_and_body(receiver):
    receiver.status, receiver.body, receiver.content_type = 201, b'{"id":"T-7",  "ok": true}', "application/json"
    webhook = hook(
        receiver.url("/tickets/{{ alert_group_id }}?by={{ user.username }}"), http_method="PUT",
        headers='{"X-Alert": "{{ alert_payload.labels.alertname }}", "X-Count": {{ alert_group.alerts_count }}}',
        data='{"title": "{{ alert_group.title }}", "labels": {{ alert_payload.labels | tojson }}}',
        username="bot", password="pa:ss",
    )  # fmt: skip
    request = render_request(webhook, context())
    outcome = send_webhook_request(request, LOCAL)

    assert (outcome.outcome, outcome.status_code, outcome.error) == (SENT, 201, None)
    assert outcome.content == '{"id": "T-7", "ok": true}'  # OnCall's: the JSON answer written again
    [arrived] = receiver.requests
    assert (arrived["method"], arrived["path"]) == ("PUT", "/tickets/I6HNZGUFG4K11?by=alice")
    assert (arrived["headers"]["X-Alert"], arrived["headers"]["X-Count"]) == ("DiskFull", "1")
    assert arrived["headers"]["Content-Type"] == "application/json"
    assert arrived["headers"]["Authorization"] == "Basic " + base64.b64encode(b"bot:pa:ss").decode()
    assert json.loads(arrived["body"]) == {"title": "DiskFull", "labels": PAYLOAD["labels"]}


def test_the_authorization_header_arrives_and_forward_all_sends_the_whole_context(receiver):
    webhook = hook(receiver.url(), forward_all=True, authorization_header="Bearer s3cret")
    request = render_request(webhook, context())
    assert send_webhook_request(request, LOCAL).sent
    [arrived] = receiver.requests
    assert arrived["headers"]["Authorization"] == "Bearer s3cret"
    assert json.loads(arrived["body"]) == context()
    assert "s3cret" not in request.request_headers and MASK in request.request_headers


def test_text_data_arrives_as_utf8_and_get_sends_no_body(receiver):
    send_webhook_request(render_request(hook(receiver.url(), data="Disk full on {{ alert_payload.labels.instance }} ✓"),
                                        context()), LOCAL)  # fmt: skip
    send_webhook_request(render_request(hook(receiver.url("/ping"), http_method="GET", data="ignored"), context()), LOCAL)
    text, ping = receiver.requests
    assert text["body"].decode() == "Disk full on db-1 ✓" and "Content-Type" not in text["headers"]
    assert (ping["method"], ping["path"], ping["body"]) == ("GET", "/ping", b"")


@pytest.mark.parametrize(
    "status, body, outcome, content",
    [(500, b"oops", TRANSIENT, "oops"), (429, b"", TRANSIENT, ""), (404, b"<html>no</html>", PERMANENT, "<html>no</html>"),
     (204, b"", SENT, ""), (200, b"x" * 50_001, SENT, "Response content 50001 exceeds 50000 character limit"),
     (200, b"\xff\xfe not utf-8", SENT, "\ufffd\ufffd not utf-8")],
)  # fmt: skip
def test_the_answer_is_recorded_as_oncall_records_it_and_says_whether_to_try_again(receiver, status, body, outcome,
                                                                                   content):  # fmt: skip
    receiver.status, receiver.body = status, body
    answer = send_webhook_request(render_request(hook(receiver.url()), context()), LOCAL)
    assert (answer.outcome, answer.status_code, answer.content, answer.error) == (outcome, status, content, None)
    assert answer.reason == str(status)


def test_a_slow_server_is_a_transient_failure_within_the_timeout(receiver):
    receiver.delay = 1.0
    started = time.monotonic()
    answer = send_webhook_request(render_request(hook(receiver.url()), context()), LOCAL, timeout=0.3)
    assert (answer.outcome, answer.status_code) == (TRANSIENT, None) and "timed out" in answer.error
    assert time.monotonic() - started < 0.9


# --- the outgoing-address guard -------------------------------------------------------------------


def test_loopback_is_refused_unless_allowed_and_the_server_sees_nothing(receiver):
    for url in (receiver.url(), receiver.url(host="localhost")):
        refused = send_webhook_request(render_request(hook(url), context()))  # the default: nothing internal
        assert refused.outcome == PERMANENT and "loopback address" in refused.error, url
        assert refused.status_code is None
    assert receiver.requests == []
    allowed = send_webhook_request(render_request(hook(receiver.url(host="localhost")), context()),
                                   OutgoingPolicy.from_setting("127.0.0.1, ::1"))  # fmt: skip
    assert allowed.sent and len(receiver.requests) == 1


def test_a_private_literal_is_refused_before_any_connection():
    for url in ("http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data", "http://[::ffff:192.168.0.1]/"):
        refused = send_webhook_request(render_request(hook(url), context()))
        assert refused.outcome == PERMANENT and refused.error.startswith("URL - This address is not allowed: "), url


@pytest.mark.parametrize("address", ["10.1.2.3", "169.254.169.254", "192.168.7.7", "fd00::1"])
def test_a_name_that_resolves_to_a_private_address_is_refused_unless_allowed(resolver_and_no_connections, address):
    answers, attempts = resolver_and_no_connections
    answers["internal.test"] = address
    request = render_request(hook("http://internal.test/{{ alert_group_id }}"), context())
    refused = send_webhook_request(request)
    assert refused.outcome == PERMANENT and f"{address} is a " in refused.error
    assert attempts == []  # refused before the socket was asked to connect

    allowed = send_webhook_request(request, OutgoingPolicy.from_setting(address))
    assert allowed.outcome == TRANSIENT and allowed.error.startswith("connection failed")
    assert [a[0] for a in attempts] == [address]


def test_a_redirect_to_an_internal_address_is_not_followed_and_credentials_do_not_follow(receiver, second_loopback):
    receiver.redirect_to = second_loopback.url("/internal")
    request = render_request(hook(receiver.url(), authorization_header="Bearer s3cret", username="bot",
                                  password="pw", data='{"x": 1}'), context())  # fmt: skip
    refused = send_webhook_request(request, LOCAL)
    assert refused.outcome == PERMANENT and "127.0.0.2 is a loopback address" in refused.error
    assert len(receiver.requests) == 1 and second_loopback.requests == []

    followed = send_webhook_request(request, OutgoingPolicy.from_setting("127.0.0.1 127.0.0.2"))
    assert followed.sent
    [arrived] = second_loopback.requests
    assert (arrived["method"], arrived["path"], json.loads(arrived["body"])) == ("POST", "/internal", {"x": 1})
    assert "Authorization" not in arrived["headers"]  # another host: requests drops the credentials


# --- templates in render workers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool():
    render_pool = RenderPool(max_workers=1, hard_limit=0.5)
    yield render_pool
    render_pool.close()


def test_templates_render_in_workers_and_one_over_the_hard_limit_is_stopped(pool, receiver):
    render = bounded_renderer(pool)
    webhook = hook(receiver.url("/{{ alert_group_id }}"), trigger_template="{{ event.type == 'acknowledge' }}",
                   data='{"by": "{{ alert_group_acknowledged_by.username }}"}')  # fmt: skip
    in_worker = render_request(webhook, context(), render)
    assert in_worker == render_request(webhook, context())  # the same as in this process
    assert render_request(webhook, context("resolve", resolved_by=ALICE), render) == NotTriggered("False")
    broken = render_request(hook(receiver.url(), headers="{{ x.y.z }}"), context(), render)
    assert broken == RequestFailed(error="Headers - Template Warning: 'x' is undefined", url=receiver.url(),
                                   request_headers="Headers - Template Warning: 'x' is undefined")  # fmt: skip

    started = time.monotonic()
    stopped = render_request(hook(receiver.url(), data=SORT_BOMB), context(), render)
    assert time.monotonic() - started < 5  # not the bomb's ~20 s
    assert isinstance(stopped, RequestFailed)
    assert stopped.error.startswith("Data - Template Error: Template rendering was stopped: it ")
    assert isinstance(render_request(webhook, context(), render), WebhookRequest)  # a fresh worker goes on
    assert receiver.requests == []  # nothing was sent by rendering


# --- from the API to the server and back ----------------------------------------------------------


def test_a_webhook_made_through_the_api_is_sent_and_its_response_listed(client, runtime, receiver):
    receiver.status, receiver.body, receiver.content_type = 202, b'{"ticket": "OPS-1"}', "application/json"
    created = make_webhook(client, name="Ops tickets", url=receiver.url("/t/{{ alert_group_id }}"),
                           trigger_type="status change", forward_all=False, authorization_header="Token t0k",
                           data='{"state": "{{ alert_group.state }}", "event": "{{ event.type }}"}')  # fmt: skip
    settings = runtime.config.webhook_settings(webhook_uuid(runtime, created))
    event = context("acknowledge", webhook={"id": created["id"], "name": created["name"]})

    attempt = attempt_webhook(settings, event, trigger_type="acknowledge", policy=LOCAL,
                              self_url=runtime.settings.base_url, at=NOW)  # fmt: skip
    assert attempt.outcome.sent and not attempt.retry
    [arrived] = receiver.requests
    assert arrived["headers"]["Authorization"] == "Token t0k"
    assert json.loads(arrived["body"]) == {"state": "acknowledged", "event": "acknowledge"}

    for _ in range(2):  # delivered twice (a retried job): recorded once
        position = runtime.config.record_webhook_response(settings.id, "attempt-1", attempt.record)
        runtime.wait_for("config", position)
    [listed] = client.get(f"/api/v1/webhooks/{created['id']}/responses").get_json()["results"]
    assert listed == {
        "timestamp": "2026-03-02T09:00:00.000000Z", "url": receiver.url("/t/I6HNZGUFG4K11"), "request_trigger": None,
        "request_headers": json.dumps({"Authorization": MASK, "Content-Type": "application/json"}),
        "request_data": '{"state": "acknowledged", "event": "acknowledge"}', "status_code": 202,
        "content": '{"ticket": "OPS-1"}', "event_data": json.dumps(event),
    }  # fmt: skip
    assert "t0k" not in json.dumps(listed)

    refused = attempt_webhook(settings, event, trigger_type="acknowledge", at=NOW)  # default policy: nothing internal
    assert (refused.outcome.outcome, refused.retry, refused.record.status_code) == (PERMANENT, False, None)
    assert "loopback address" in refused.record.content and len(receiver.requests) == 1
