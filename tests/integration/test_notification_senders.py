"""The notification senders against real servers on this machine: a real SMTP server (aiosmtpd)
receives and parses the email ``send_email`` sends; a real HTTP server receives the webhook POST
and Apprise's ``json://`` post; and the outgoing-address guard refuses loopback addresses, names
that resolve to them and redirects to them unless ``TOCSIN_OUTGOING_ALLOW`` lists them, without
the refused server ever seeing a request.

Only 127.0.0.0/8 is ever connected to. Refusals of other private addresses are checked where
nothing can leave the machine: a literal address is refused before any connection, and a name
that resolves to one is tested with a resolver that answers that address and a socket that
records (and refuses) any connection attempt.
"""

from __future__ import annotations

import http.server
import json
import time

import pytest

from adapters.http_guard import OutgoingPolicy, guarded
from adapters.notify_channels import (
    PERMANENT,
    SENT,
    TRANSIENT,
    email_message,
    send_apprise,
    send_email,
    send_webhook,
)
from tests.local_servers import LOCAL, free_port

# The servers (``mailbox``, ``receiver``, ``second_loopback``) and the resolver are fixtures of
# tests/integration/conftest.py.


# --- a real SMTP server ---------------------------------------------------------------------------


def test_an_email_reaches_a_real_smtp_server_with_login_and_the_sender_from_the_setting(mailbox):
    url = f"smtp://oncall%40example.com:s3cret%3A%2F%40@127.0.0.1:{mailbox.port}/?from=pager@example.com"
    message = email_message("alice@example.com", "[Tocsin] #7 InstanceDown", "Status: firing\nlabels: job=node")

    result = send_email(url, message)

    assert (result.outcome, result.reason) == (SENT, "")
    assert mailbox.logins == [("oncall@example.com", "s3cret:/@")]  # the URL's parts, unquoted
    [(envelope, received)] = mailbox.messages
    assert envelope.mail_from == "pager@example.com" and envelope.rcpt_tos == ["alice@example.com"]
    assert received["Subject"] == "[Tocsin] #7 InstanceDown"
    assert (received["From"], received["To"]) == ("pager@example.com", "alice@example.com")
    assert received["Message-ID"] and received["Date"]
    assert received.get_content().splitlines() == ["Status: firing", "labels: job=node"]


def test_a_title_with_line_breaks_cannot_add_headers(mailbox):
    message = email_message("bob@example.com", "Disk full\r\nBcc: mallory@example.com\nX-Evil: 1", "body")
    assert send_email(f"smtp://127.0.0.1:{mailbox.port}", message).outcome == SENT
    [(envelope, received)] = mailbox.messages
    assert envelope.rcpt_tos == ["bob@example.com"]
    assert received["Bcc"] is None and received["X-Evil"] is None
    assert received["Subject"] == "Disk full Bcc: mallory@example.com X-Evil: 1"
    assert received["From"] == "tocsin@127.0.0.1"  # no from= in the URL


@pytest.mark.parametrize(
    "answer, outcome", [("450 Mailbox busy, try later", TRANSIENT), ("550 No such user here", PERMANENT)]
)
def test_a_refused_recipient_is_transient_for_4xx_and_permanent_for_5xx(mailbox, answer, outcome):
    mailbox.rcpt_answer = answer
    result = send_email(f"smtp://127.0.0.1:{mailbox.port}", email_message("carol@example.com", "t", "b"))
    assert result.outcome == outcome
    assert answer.split(" ", 1)[1] in result.reason and "carol@example.com" in result.reason
    assert mailbox.messages == []


def test_a_wrong_password_is_permanent(mailbox):
    result = send_email(f"smtp://u:wrong@127.0.0.1:{mailbox.port}", email_message("d@example.com", "t", "b"))
    assert result.outcome == PERMANENT and result.reason.startswith("SMTP 535")
    assert mailbox.messages == []


def test_starttls_required_but_not_offered_is_permanent(mailbox):
    result = send_email(f"smtp://127.0.0.1:{mailbox.port}?starttls=true", email_message("e@example.com", "t", "b"))
    assert result.outcome == PERMANENT and "STARTTLS" in result.reason
    assert mailbox.messages == []


def test_no_server_or_no_setting():
    closed = send_email(f"smtp://127.0.0.1:{free_port()}", email_message("f@example.com", "t", "b"))
    assert closed.outcome == TRANSIENT and "refused" in closed.reason.lower()
    unset = send_email(None, email_message("f@example.com", "t", "b"))
    assert (unset.outcome, unset.reason) == (PERMANENT, "no SMTP server is configured (TOCSIN_SMTP_URL)")
    wrong = send_email("http://mail.example.com", email_message("f@example.com", "t", "b"))
    assert wrong.outcome == PERMANENT and "TOCSIN_SMTP_URL" in wrong.reason


# --- a real HTTP server ---------------------------------------------------------------------------


def test_a_webhook_posts_json_to_a_real_server(receiver):
    payload = {"title": "InstanceDown", "message": "Status: firing", "alert_group": {"id": "I123", "n": 7}}
    result = send_webhook(receiver.url("/hooks/oncall?key=abc"), payload, policy=LOCAL)
    assert (result.outcome, result.reason) == (SENT, "")
    [request] = receiver.requests
    assert (request["method"], request["path"]) == ("POST", "/hooks/oncall?key=abc")
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == payload


@pytest.mark.parametrize(
    "status, outcome",
    [(500, TRANSIENT), (503, TRANSIENT), (429, TRANSIENT), (408, TRANSIENT), (404, PERMANENT), (401, PERMANENT),
     (204, SENT)],
)  # fmt: skip
def test_a_webhook_answer_decides_whether_to_try_again(receiver, status, outcome):
    receiver.status = status
    result = send_webhook(receiver.url(), {"x": 1}, policy=LOCAL)
    assert result.outcome == outcome
    assert result.reason == ("" if outcome == SENT else f"HTTP {status} {http.HTTPStatus(status).phrase}")


def test_a_slow_webhook_times_out_as_a_transient_failure(receiver):
    receiver.delay = 1.0
    started = time.monotonic()
    result = send_webhook(receiver.url(), {"x": 1}, policy=LOCAL, timeout=0.3)
    assert result.outcome == TRANSIENT and "timed out" in result.reason
    assert time.monotonic() - started < 0.9


def test_loopback_is_refused_unless_allowed_and_the_server_sees_nothing(receiver):
    for url in (receiver.url(), receiver.url(host="localhost")):
        refused = send_webhook(url, {"x": 1})
        assert refused.outcome == PERMANENT and "loopback" in refused.reason, url
    assert receiver.requests == []

    allowed_name = send_webhook(receiver.url(host="localhost"), {"x": 2}, policy=OutgoingPolicy.from_setting("127.0.0.1, ::1"))
    assert allowed_name.outcome == SENT
    assert [json.loads(r["body"]) for r in receiver.requests] == [{"x": 2}]


def test_a_name_that_resolves_to_loopback_is_refused_when_connecting(receiver):
    """``localhost`` passes the check made when an address is saved (it is a name) and is refused
    at connect time, once resolved."""
    result = send_webhook(receiver.url(host="localhost"), {"x": 1}, policy=OutgoingPolicy.from_setting("192.0.2.0/24"))
    assert result.outcome == PERMANENT
    assert result.reason.startswith("refused: ") and "loopback address" in result.reason
    assert receiver.requests == []


def test_a_redirect_to_a_refused_address_is_not_followed(receiver, second_loopback):
    receiver.redirect_to = second_loopback.url("/internal")
    result = send_webhook(receiver.url(), {"x": 1}, policy=LOCAL)
    assert result.outcome == PERMANENT and "127.0.0.2 is a loopback address" in result.reason
    assert len(receiver.requests) == 1 and second_loopback.requests == []

    both = OutgoingPolicy.from_setting("127.0.0.1 127.0.0.2")
    assert send_webhook(receiver.url(), {"x": 2}, policy=both).outcome == SENT
    [followed] = second_loopback.requests
    assert (followed["method"], followed["path"], json.loads(followed["body"])) == ("POST", "/internal", {"x": 2})


@pytest.mark.parametrize(
    "address, kind",
    [("10.20.30.40", "private"), ("169.254.169.254", "link-local"), ("192.168.1.1", "private"),
     ("100.64.0.1", "reserved"), ("::ffff:10.0.0.1", "private"), ("0.0.0.0", "unspecified")],
)  # fmt: skip
def test_private_and_link_local_literals_are_refused_before_any_connection(receiver, address, kind):
    host = f"[{address}]" if ":" in address else address
    result = send_webhook(f"http://{host}:{receiver.port}/hook", {"x": 1})
    assert result.outcome == PERMANENT and f"is a {kind} address" in result.reason


@pytest.mark.parametrize("address", ["10.1.2.3", "169.254.169.254", "172.16.0.9", "fd00::1"])
def test_a_name_that_resolves_to_a_private_address_is_refused_at_connect_time(resolver_and_no_connections, address):
    answers, attempts = resolver_and_no_connections
    answers["internal.test"] = address
    result = send_webhook("http://internal.test/hook", {"x": 1})
    assert result.outcome == PERMANENT and f"{address} is a " in result.reason
    assert attempts == []  # refused before the socket was asked to connect

    # Listed, it gets as far as connecting (which this test's socket refuses).
    allowed = send_webhook("http://internal.test/hook", {"x": 1}, policy=OutgoingPolicy.from_setting(address))
    assert allowed.outcome == TRANSIENT and allowed.reason.startswith("connection failed")
    assert [a[0] for a in attempts] == [address]


def test_outside_guarded_blocks_connections_are_not_checked(receiver):
    """The guard changes nothing for other code (the event store, Redis, the iCal fetcher)."""
    import requests

    assert requests.get(receiver.url("/plain"), timeout=2).status_code == 200
    with guarded(OutgoingPolicy()), pytest.raises(requests.ConnectionError):
        requests.get(receiver.url("/guarded"), timeout=2)
    assert [r["path"] for r in receiver.requests] == ["/plain"]


# --- Apprise --------------------------------------------------------------------------------------


def test_an_apprise_json_post_reaches_a_real_server(receiver):
    url = f"json://127.0.0.1:{receiver.port}/apprise/hook?:source=tocsin"
    result = send_apprise(url, "[Tocsin] InstanceDown", "Status: firing", policy=LOCAL)
    assert (result.outcome, result.reason) == (SENT, "")
    [request] = receiver.requests
    assert (request["method"], request["path"]) == ("POST", "/apprise/hook")
    posted = json.loads(request["body"])
    assert (posted["title"], posted["message"], posted["source"]) == ("[Tocsin] InstanceDown", "Status: firing", "tocsin")


def test_apprise_is_guarded_like_a_webhook(receiver):
    for host in ("127.0.0.1", "localhost"):
        result = send_apprise(f"json://{host}:{receiver.port}/hook", "t", "b")
        assert result.outcome == PERMANENT and "loopback address" in result.reason, host
    assert receiver.requests == []


@pytest.mark.parametrize("status, outcome", [(401, PERMANENT), (404, PERMANENT), (503, TRANSIENT), (429, TRANSIENT)])
def test_an_apprise_failure_says_why_and_whether_to_try_again(receiver, status, outcome):
    receiver.status = status
    result = send_apprise(f"json://127.0.0.1:{receiver.port}/hook", "t", "b", policy=LOCAL)
    assert result.outcome == outcome and str(status) in result.reason
    assert len(receiver.requests) == 1  # tried once: retrying is the caller's decision


def test_an_apprise_url_that_cannot_be_used_is_a_permanent_failure(receiver):
    for url, text in (
        ("mailto://user:pass@example.com", "do not send over HTTP"),
        ("nosuchservice://x", 'Apprise does not support "nosuchservice://"'),
        (f"json://127.0.0.1:{receiver.port}/?template=/etc/passwd", "not accepted"),
    ):
        result = send_apprise(url, "t", "b", policy=LOCAL)
        assert result.outcome == PERMANENT and text in result.reason, url
    assert receiver.requests == []
