"""Notifications delivered on both backends, to real servers on this machine: an escalation step
notifies a person by their rules (email to a real SMTP server, a JSON webhook and an Apprise
``json://`` post to a real HTTP server), every attempt and its outcome is on the alert group's
timeline, a transient failure is tried again and a permanent one is not, an acknowledged group
stops the person's later steps, and an attempt queued twice, or lost before it was sent, is sent
exactly once."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from uuid import UUID

import pytest

from adapters.notify_channels import check_apprise_url, check_webhook_url
from domain.delivery import DeliveryAttempt
from domain.ids import PREFIX_ALERT_GROUP, public_id
from domain.notification_rules import make_step
from tests.conftest import eventually
from tests.integration.test_escalation_runs import (
    Clock,
    actions,
    chain_with,
    fire,
    routed_integration,
)
from tests.integration.test_users_and_teams import make_user
from tests.local_servers import LOCAL


@pytest.fixture
def settings(settings, mailbox):
    """The test's settings, sending email to the real SMTP server and allowed to reach 127.0.0.1."""
    return replace(settings, smtp_url=f"smtp://127.0.0.1:{mailbox.port}/?from=pager@example.org",
                   outgoing_allow="127.0.0.1")  # fmt: skip


@pytest.fixture
def clock(runtime) -> Clock:
    clock = Clock()
    runtime.ticker.clock = clock
    return clock


def user(client, runtime, name: str, *steps, important: bool = False, **channels) -> dict:
    """A user (an editor) with these rules, in order, and channel addresses (slot=URL)."""
    created = make_user(client, name, role="editor", email=f"{name}@example.org")
    user_id = UUID(runtime.db.query_one("SELECT uuid FROM users WHERE id = %s", (created["id"],))["uuid"])
    for step in steps:
        runtime.config.add_notification_rule(user_id, important, make_step(*step))
    if channels:
        shown = {slot: {"url": url, "shown": check_webhook_url(url, LOCAL) if slot == "webhook" else check_apprise_url(url)}
                 for slot, url in channels.items()}  # fmt: skip
        runtime.config.change_notification_channels(user_id, shown)
    return created


def paging(client, make_integration, person: dict) -> dict:
    chain = chain_with(client, f"Chain of {person['username']}",
                       {"type": "notify_persons", "persons_to_notify": [person["id"]]})  # fmt: skip
    return routed_integration(client, make_integration, chain)


def test_an_email_by_the_fallback_rule_reaches_the_smtp_server_and_the_timeline_says_so(
    client, runtime, make_integration, mailbox
):
    alice = user(client, runtime, "alice")  # no rules: OnCall's fallback, one email
    group_id = fire(client, paging(client, make_integration, alice), "Disk full on db-1")
    eventually(lambda: mailbox.messages, describe="an email")
    [(envelope, message)] = mailbox.messages
    assert envelope.rcpt_tos == ["alice@example.org"] and message["Subject"] == "Disk full on db-1"
    assert len(message["X-Tocsin-Attempt"]) == 36  # the attempt's id: the receiver's idempotency key
    eventually(lambda: "sent email to alice (alice@example.org)" in actions(client, group_id),
               describe="the timeline entry")  # fmt: skip
    entry = next(e for e in client.get(f"/api/v1/alert_groups/{group_id}/timeline/").get_json()["results"]
                 if e["type"] == 104)  # fmt: skip
    assert entry["details"] == {"channel": "email", "attempt": 1, "address": "alice@example.org", "user": "alice"}


def test_rules_in_order_webhook_then_apprise_and_a_wait_stopped_by_acknowledge(
    client, runtime, make_integration, receiver, mailbox, clock
):
    bob = user(
        client, runtime, "bob",
        ("notify_by_webhook",), ("notify_by_slack",), ("wait", 300), ("notify_by_email",),
        webhook=receiver.url("/bob-hook"), slack=f"json://127.0.0.1:{receiver.port}/apprise",
    )  # fmt: skip
    group_id = fire(client, paging(client, make_integration, bob), "CPU hot")
    eventually(lambda: len(receiver.requests) == 2, describe="the webhook and the Apprise post")
    paths = sorted(request["path"] for request in receiver.requests)
    assert paths == ["/apprise", "/bob-hook"]
    hook = next(r for r in receiver.requests if r["path"] == "/bob-hook")
    body = json.loads(hook["body"])
    assert body["title"] == "CPU hot" and body["user"] == "bob" and body["alert_group_id"] == group_id
    assert len(body["attempt_id"]) == 36 and set(body["actions"]) == {"acknowledge", "resolve", "silence",
                                                                      "unacknowledge"}  # fmt: skip
    eventually(lambda: sum(a.startswith("sent ") for a in actions(client, group_id)) == 2,
               describe="two sent entries")  # fmt: skip
    assert client.post(f"/api/v1/alert_groups/{group_id}/acknowledge").status_code == 200
    clock.advance(301)  # the wait is over: the email step finds the group acknowledged
    eventually(lambda: "stopped notifying bob: alert group was acknowledged" in actions(client, group_id),
               describe="the stop")  # fmt: skip
    assert mailbox.messages == []


def test_a_transient_failure_is_tried_again_and_a_permanent_one_is_not(
    client, runtime, make_integration, receiver, clock
):
    carol = user(client, runtime, "carol", ("notify_by_webhook",), webhook=receiver.url("/flaky"))
    dave = user(client, runtime, "dave", ("notify_by_sms",))  # no SMS address: nothing to try again
    receiver.status = 503
    group_id = fire(client, paging(client, make_integration, carol), "flaky")
    eventually(lambda: any(a.startswith("failed to notify carol by webhook: HTTP 503")
                           for a in actions(client, group_id)), describe="the failure")  # fmt: skip
    receiver.status = 200
    clock.advance(6)  # the backoff before the second attempt
    eventually(lambda: "sent webhook to carol" in " ".join(actions(client, group_id)), describe="a retry")
    assert len(receiver.requests) == 2

    other = fire(client, paging(client, make_integration, dave), "no address")
    eventually(lambda: "failed to notify dave by SMS: dave has no sms address" in actions(client, other),
               describe="the permanent failure")  # fmt: skip
    clock.advance(600)
    time.sleep(2)
    assert [a for a in actions(client, other) if a.startswith("failed")] == [
        "failed to notify dave by SMS: dave has no sms address"
    ]


def test_an_attempt_queued_twice_is_sent_once_and_a_lost_one_is_sent_when_checked(
    client, runtime, make_integration, mailbox, clock
):
    erin = user(client, runtime, "erin")
    runtime.dispatcher.queue = LosingQueue()  # the queue loses every job, as a flushed Redis would
    group_id = fire(client, paging(client, make_integration, erin), "lost")
    attempt_id = eventually(lambda: _attempt_of(runtime, group_id), describe="the attempt")
    time.sleep(1)
    assert mailbox.messages == []
    clock.advance(21)  # its check: never started, so it is dispatched again
    runtime.dispatcher.queue = runtime._delivery_queue
    eventually(lambda: len(mailbox.messages) == 1, describe="the email, once")
    assert runtime.deliverer.deliver(attempt_id) is None  # queued again: nothing more is sent
    time.sleep(0.5)
    assert len(mailbox.messages) == 1
    assert actions(client, group_id).count("sent email to erin (erin@example.org)") == 1


class LosingQueue:
    def put(self, attempt_id):
        pass

    def close(self):
        pass


def _attempt_of(runtime, group_id: str) -> UUID | None:
    for stored in runtime.alerting.recorder.select_notifications(0, 10_000):
        if stored.topic.endswith("DeliveryAttempt.Requested"):
            event = runtime.alerting.mapper.to_domain_event(stored)
            attempt: DeliveryAttempt = runtime.alerting.repository.get(event.originator_id)
            if public_id(PREFIX_ALERT_GROUP, attempt.group_id) == group_id:
                return attempt.id
    return None


def test_the_emails_acknowledge_link_acts_as_the_person_and_a_prefetch_changes_nothing(
    client, app, runtime, make_integration, mailbox
):
    alice = user(client, runtime, "alice")
    group_id = fire(client, paging(client, make_integration, alice), "Disk full on db-1")
    eventually(lambda: mailbox.messages, describe="an email")
    [(_, message)] = mailbox.messages
    text = message.get_content()
    link = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Acknowledge: "))
    assert link.startswith("http://tocsin.test/a/")
    assert "Silence for 30 minutes: http://tocsin.test/a/" in text
    reply_to = message["Reply-To"]
    assert reply_to is None or reply_to.startswith("ack+")
    browser = app.test_client()  # no API token: the link is the credential
    path = link.removeprefix("http://tocsin.test")
    assert browser.get(path).status_code == 200  # a mail scanner's GET only shows the question
    assert client.get(f"/api/v1/alert_groups/{group_id}/").get_json()["state"] == "firing"
    assert browser.post(path).status_code == 200
    assert client.get(f"/api/v1/alert_groups/{group_id}/").get_json()["state"] == "acknowledged"
    assert "Acknowledged by alice" in actions(client, group_id)


def test_outgoing_webhooks_fire_on_their_events_and_from_an_escalation_step(
    client, runtime, make_integration, receiver, clock
):
    from tests.integration.test_webhooks_api import make_webhook

    on_ack = make_webhook(client, name="Ack hook", trigger_type="acknowledge", url=receiver.url("/ack"),
                          forward_whole_payload=True)  # fmt: skip
    stepped = make_webhook(client, name="Step hook", trigger_type="escalation", url=receiver.url("/step"),
                           forward_whole_payload=False, data='{"group": "{{ alert_group.id }}"}')  # fmt: skip
    make_webhook(client, name="Never", trigger_type="acknowledge", url=receiver.url("/never"),
                 trigger_template="{{ false }}")  # fmt: skip
    make_webhook(client, name="Pager log", trigger_type="personal notification", url=receiver.url("/person"),
                 forward_whole_payload=False, data='{"who": "{{ event.user.username }}"}')  # fmt: skip
    frank = user(client, runtime, "frank", ("notify_by_webhook",), webhook=receiver.url("/frank"))
    chain = chain_with(client, "Hooks", {"type": "trigger_webhook", "action_to_trigger": stepped["id"]},
                       {"type": "notify_persons", "persons_to_notify": [frank["id"]]})  # fmt: skip
    group_id = fire(client, routed_integration(client, make_integration, chain), "Hooked")

    eventually(lambda: sorted(r["path"] for r in receiver.requests) == ["/frank", "/person", "/step"],
               describe="the step's webhook, frank's notification and its webhook")  # fmt: skip
    bodies = {r["path"]: json.loads(r["body"]) for r in receiver.requests}
    assert bodies["/step"] == {"group": group_id} and bodies["/person"] == {"who": "frank"}
    receiver.requests.clear()
    assert client.post(f"/api/v1/alert_groups/{group_id}/acknowledge").status_code == 200
    eventually(lambda: len(receiver.requests) == 1, describe="the acknowledge webhook")
    sent = json.loads(receiver.requests[0]["body"])
    assert len(receiver.requests[0]["headers"]["X-Tocsin-Attempt"]) == 36  # the receiver's idempotency key
    assert receiver.requests[0]["path"] == "/ack"
    assert sent["event"]["type"] == "acknowledge" and sent["alert_group"]["id"] == group_id
    assert sent["alert_group"]["state"] == "acknowledged" and sent["webhook"]["name"] == "Ack hook"
    eventually(lambda: {"outgoing webhook `Step hook` triggered by escalation",
                        "outgoing webhook `Ack hook` triggered by acknowledge"} <= set(actions(client, group_id)),
               describe="both on the timeline")  # fmt: skip
    assert not any("Never" in action for action in actions(client, group_id))
    responses = eventually(lambda: client.get(f"/api/v1/webhooks/{on_ack['id']}/responses").get_json()["results"],
                           describe="the response, once the configuration's read models show it")  # fmt: skip
    assert [(r["status_code"], r["event_data"] is not None) for r in responses] == [(200, True)]
    time.sleep(1)
    assert [r["path"] for r in receiver.requests] == ["/ack"]  # each once
