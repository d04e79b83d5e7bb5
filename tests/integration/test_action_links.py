"""Acting on an alert group from a notification, on both backends: the action links' pages (a GET
changes nothing, a POST acts as the link's user) and replies to the notification email through
the real SMTP receiver."""

from __future__ import annotations

import smtplib
import socket
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from adapters.action_links import action_link, action_links, reply_address, reply_token
from domain.ids import PREFIX_ALERT_GROUP, public_id
from tests.conftest import eventually
from tests.integration.conftest import groups_of, inbound_path, wait_for_groups
from workers.smtp import SMTPReceiver


@pytest.fixture
def app(app):
    """The app with the action links' pages (registered here until the app factory does it)."""
    if "action_links" not in app.blueprints:
        from web.action_links import action_links as blueprint

        app.register_blueprint(blueprint)
    return app


@pytest.fixture
def browser(app):
    """A client without any token or cookie: the link alone must do."""
    return app.test_client()


@pytest.fixture
def hook(make_integration):
    return make_integration("formatted_webhook", name="Hooks")


@pytest.fixture
def group(client, hook) -> dict:
    response = client.post(inbound_path(hook), json={"alert_uid": "disk", "title": "Disk <full> on db-1"})
    assert response.status_code == 200
    (group,) = wait_for_groups(client, hook["id"], 1)
    return group


def make_user(client, runtime, username: str, role: str) -> tuple[str, UUID]:
    response = client.post("/api/v1/users/", json={"username": username, "role": role})
    assert response.status_code == 201, response.get_json()
    user_id = response.get_json()["id"]
    return user_id, UUID(runtime.db.query_one("SELECT uuid FROM users WHERE id = %s", (user_id,))["uuid"])


@pytest.fixture
def alice(client, runtime) -> tuple[str, UUID]:
    return make_user(client, runtime, "alice", "editor")


def now() -> datetime:
    return datetime.now(UTC)


def path_of(url: str) -> str:
    assert url.startswith("http://tocsin.test/a/")
    return url.removeprefix("http://tocsin.test")


def state_of(client, group: dict) -> dict:
    return client.get(f"/api/v1/alert_groups/{group['id']}/").get_json()


def authored(client, group: dict) -> list[str]:
    timeline = client.get(f"/api/v1/alert_groups/{group['id']}/timeline/").get_json()["results"]
    return [entry["action"] for entry in timeline if entry["author"]]


# --- the links' pages --------------------------------------------------------------------------


def test_opening_a_link_shows_what_it_will_do_and_changes_nothing(runtime, client, browser, group, alice):
    links = action_links(runtime.settings, alice[1], "alice", group["id"], now())
    before = client.get(f"/api/v1/alert_groups/{group['id']}/timeline/").get_json()
    for action, url in links.items():
        page = browser.get(path_of(url))
        assert page.status_code == 200, action
        text = page.get_data(as_text=True)
        assert "Disk &lt;full&gt; on db-1" in text and "<full>" not in text  # the title, escaped
        assert group["id"] in text and "alice" in text and "Firing" in text
        assert '<form method="post">' in text
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert browser.head(path_of(url)).status_code == 200  # link checkers' HEAD too
    assert "Silence for 30 minutes" in browser.get(path_of(links["silence"])).get_data(as_text=True)
    assert client.get(f"/api/v1/alert_groups/{group['id']}/timeline/").get_json() == before
    assert state_of(client, group)["state"] == "firing"


def test_posting_a_link_acts_as_its_user_and_refusals_use_oncalls_words(runtime, client, browser, group, alice):
    links = {action: path_of(url) for action, url in action_links(runtime.settings, alice[1], "alice", group["id"], now()).items()}

    done = browser.post(links["acknowledge"])
    assert done.status_code == 200
    assert "Acknowledged by alice." in done.get_data(as_text=True)
    assert "Acknowledged" in done.get_data(as_text=True).split('id="group-state"')[1]  # the new state shown
    shown = state_of(client, group)
    assert (shown["state"], shown["acknowledged_by"]) == ("acknowledged", "alice")
    assert authored(client, group) == ["Acknowledged by alice"]

    # The same link again: the group refuses, as OnCall does.
    again = browser.post(links["acknowledge"])
    assert again.status_code == 400
    assert "Can&#39;t acknowledge an acknowledged alert group" in again.get_data(as_text=True)
    refused = browser.post(links["silence"])
    assert refused.status_code == 400
    assert "Can&#39;t silence an acknowledged alert group" in refused.get_data(as_text=True)

    assert browser.post(links["unacknowledge"]).status_code == 200
    assert browser.post(links["silence"]).status_code == 200
    assert state_of(client, group)["state"] == "silenced"
    assert browser.post(links["resolve"]).status_code == 200
    assert authored(client, group) == [
        "Acknowledged by alice",
        "Unacknowledged by alice",
        "Silenced by alice for 30 minutes",
        "Unsilenced by alice",
        "Resolved by alice",
    ]
    assert state_of(client, group)["resolved_by"] == "alice"


def test_changed_expired_and_unknown_links_are_refused_with_a_page_and_change_nothing(runtime, client, browser, group, alice):
    url = action_link(runtime.settings, alice[1], "alice", group["id"], "acknowledge", now())
    token = path_of(url).removeprefix("/a/")
    tampered = token[:-3] + ("xyz" if not token.endswith("xyz") else "abc")
    expired = action_link(runtime.settings, alice[1], "alice", group["id"], "acknowledge", now() - timedelta(days=7, seconds=1))
    no_group = action_link(runtime.settings, alice[1], "alice", public_id(PREFIX_ALERT_GROUP, UUID(int=7)), "resolve", now())
    cases = [
        (f"/a/{tampered}", 400, "This link is not valid"),
        (f"/a/{token[: len(token) // 2]}", 400, "This link is not valid"),  # cut by a line wrap
        ("/a/" + "A" * 5000, 400, "This link is not valid"),
        ("/a/%00" + token, 400, "This link is not valid"),
        (path_of(expired), 410, "This link has expired"),
        (path_of(no_group), 404, "No such alert group."),
    ]
    for path, status, text in cases:
        for method in (browser.get, browser.post):
            page = method(path)
            assert page.status_code == status, (path, method)
            assert text in page.get_data(as_text=True)
            assert page.mimetype == "text/html"
    assert state_of(client, group)["state"] == "firing"
    assert authored(client, group) == []


def test_links_of_deleted_users_and_viewers_are_refused_when_they_act(runtime, client, browser, group, alice):
    vera = make_user(client, runtime, "vera", "viewer")
    bob = make_user(client, runtime, "bob", "editor")
    vera_link = path_of(action_link(runtime.settings, vera[1], "vera", group["id"], "acknowledge", now()))
    bob_link = path_of(action_link(runtime.settings, bob[1], "bob", group["id"], "acknowledge", now()))
    alice_link = path_of(action_link(runtime.settings, alice[1], "alice", group["id"], "acknowledge", now()))

    for method in (browser.get, browser.post):
        page = method(vera_link)
        assert page.status_code == 403
        assert "vera is a viewer: only editors and admins can act on alert groups." in page.get_data(as_text=True)

    # Bob is deleted, Alice becomes a viewer, both after their links were sent.
    assert browser.get(bob_link).status_code == 200
    assert client.delete(f"/api/v1/users/{bob[0]}/").status_code == 204
    assert client.patch(f"/api/v1/users/{alice[0]}/", json={"role": "viewer"}).status_code == 200
    gone = browser.post(bob_link)
    assert gone.status_code == 403
    assert "The user bob no longer exists." in gone.get_data(as_text=True)
    demoted = browser.post(alice_link)
    assert demoted.status_code == 403
    assert "alice is a viewer" in demoted.get_data(as_text=True)
    assert state_of(client, group)["state"] == "firing"

    # Promoted again, the same link works: the role is the one of the moment.
    assert client.patch(f"/api/v1/users/{alice[0]}/", json={"role": "admin"}).status_code == 200
    assert browser.post(alice_link).status_code == 200
    assert authored(client, group) == ["Acknowledged by alice"]


@pytest.fixture
def key_from_the_data_dir(monkeypatch):
    monkeypatch.delenv("TOCSIN_SECRET_KEY", raising=False)


def test_links_are_signed_with_the_dashboards_secret_key(key_from_the_data_dir, runtime, app, browser, group, alice, monkeypatch):
    """The key of the data directory (what the dashboard signs its sessions with), or
    TOCSIN_SECRET_KEY: a link signed with another key is refused."""
    link = path_of(action_link(runtime.settings, alice[1], "alice", group["id"], "acknowledge", now()))
    assert (runtime.settings.data_dir / "secret_key").read_text().strip() == app.secret_key
    assert browser.get(link).status_code == 200
    monkeypatch.setenv("TOCSIN_SECRET_KEY", "another-key")
    assert browser.get(link).status_code == 400
    assert browser.get(path_of(action_link(runtime.settings, alice[1], "alice", group["id"], "acknowledge", now()))).status_code == 200


# --- replies to the notification email ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_port(runtime):
    port = free_port()
    receiver = SMTPReceiver(runtime, f"127.0.0.1:{port}")
    receiver.start()
    yield port
    receiver.stop()


def reply(port: int, to: str, body: str, headers: str = "") -> dict:
    """Send a reply as a mail client would; the refused recipients (as smtplib reports them)."""
    message = (
        f"From: Alice <alice@example.com>\r\nTo: {to}\r\nSubject: Re: [Tocsin] Disk full\r\n{headers}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        return smtp.sendmail("alice@example.com", [to], message.encode())


def test_replying_ack_to_a_notification_acknowledges_and_never_becomes_an_alert(runtime, client, group, alice, hook, smtp_port):
    address = reply_address(runtime.settings, reply_token(runtime.settings, alice[1], group["id"], now()))
    assert address.endswith("@tocsin.test")
    quoted = "> Acknowledge: http://tocsin.test/a/...\r\n> Resolve: http://tocsin.test/a/..."

    # An out-of-office answer and a reply without a command do nothing.
    assert reply(smtp_port, address, "ack", headers="Auto-Submitted: auto-replied\r\n") == {}
    with pytest.raises(smtplib.SMTPDataError) as nothing:
        reply(smtp_port, address, f"Thanks, looking\r\n\r\n{quoted}")
    assert nothing.value.smtp_code == 554 and b'start the reply with "ack"' in nothing.value.smtp_error
    assert state_of(client, group)["state"] == "firing"

    assert reply(smtp_port, address, f"Ack\r\n\r\nOn Friday, Tocsin wrote:\r\n{quoted}") == {}
    group_uuid = UUID(runtime.db.query_one("SELECT uuid FROM alert_groups WHERE id = %s", (group["id"],))["uuid"])
    assert runtime.alerting.get_group(group_uuid).acknowledged  # 250 came after the commit
    shown = eventually(lambda: (s := state_of(client, group))["state"] == "acknowledged" and s, describe="acknowledged")
    assert shown["acknowledged_by"] == "alice"
    assert authored(client, group) == ["Acknowledged by alice"]

    with pytest.raises(smtplib.SMTPDataError) as refused:
        reply(smtp_port, address.upper(), "acknowledge")  # a relay may change the case
    assert refused.value.smtp_code == 554
    assert b"Can't acknowledge an acknowledged alert group" in refused.value.smtp_error

    assert reply(smtp_port, address, "RESOLVE") == {}
    eventually(lambda: state_of(client, group)["resolved_by"] == "alice", describe="resolved by alice")
    # No reply became an alert or a group.
    assert [g["id"] for g in groups_of(client, hook["id"])] == [group["id"]]
    assert client.get(f"/api/v1/alerts/?alert_group_id={group['id']}").get_json()["count"] == 1
    assert runtime.db.query_one("SELECT COUNT(*) AS n FROM alert_groups")["n"] == 1


def test_replies_to_changed_or_expired_addresses_or_of_viewers_are_refused(runtime, client, group, alice, smtp_port):
    settings = runtime.settings
    expired = reply_address(settings, reply_token(settings, alice[1], group["id"], now() - timedelta(days=8)))
    valid = reply_address(settings, reply_token(settings, alice[1], group["id"], now()))
    local, _, domain = valid.rpartition("@")
    changed = f"{local[:-1]}{'A' if local[-1] != 'A' else 'B'}@{domain}"
    with pytest.raises(smtplib.SMTPRecipientsRefused) as late:
        reply(smtp_port, expired, "ack")
    code, text = late.value.recipients[expired]
    assert code == 550 and b"This reply address expired" in text
    with pytest.raises(smtplib.SMTPRecipientsRefused) as forged:
        reply(smtp_port, changed, "ack")
    assert forged.value.recipients[changed][0] == 550

    vera = make_user(client, runtime, "vera", "viewer")
    with pytest.raises(smtplib.SMTPDataError) as viewer:
        reply(smtp_port, reply_address(settings, reply_token(settings, vera[1], group["id"], now())), "ack")
    assert viewer.value.smtp_code == 554 and b"vera is a viewer" in viewer.value.smtp_error
    assert client.delete(f"/api/v1/users/{alice[0]}/").status_code == 204
    with pytest.raises(smtplib.SMTPDataError) as deleted:
        reply(smtp_port, valid, "ack")
    assert deleted.value.smtp_code == 554 and b"no longer exists" in deleted.value.smtp_error
    assert state_of(client, group)["state"] == "firing"


def test_a_reply_travels_apart_from_mail_to_integrations(runtime, client, make_integration, group, alice, smtp_port):
    """One message never both acts and alerts: the recipient of the other kind is deferred (452),
    and the sender delivers it in a message of its own."""
    mail = make_integration("inbound_email", name="Mail")
    (row,) = runtime.db.query("SELECT token FROM integrations WHERE id = %s", (mail["id"],))
    integration_address = f"{row['token']}@tocsin.test"
    address = reply_address(runtime.settings, reply_token(runtime.settings, alice[1], group["id"], now()))
    message = b"From: alice@example.com\r\nSubject: Re: Disk full\r\n\r\nack\r\n"
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
        refused = smtp.sendmail("alice@example.com", [address, integration_address], message)
    assert refused[integration_address][0] == 452
    eventually(lambda: state_of(client, group)["state"] == "acknowledged", describe="acknowledged")
    assert groups_of(client, mail["id"]) == []
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
        refused = smtp.sendmail("alice@example.com", [integration_address, address], message)
    assert refused[address][0] == 452
    wait_for_groups(client, mail["id"], 1)
