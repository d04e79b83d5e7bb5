"""Action links and reply addresses of notifications: what a token grants, and what it cannot be
made to grant (another action, group or user, a later expiry), without any server."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from itsdangerous import URLSafeSerializer

from adapters.action_links import (
    ACTIONS,
    SILENCE_SECONDS,
    ExpiredToken,
    InvalidToken,
    action_link,
    action_links,
    action_token,
    actor_refusal,
    command_for,
    read_action_token,
    read_reply_token,
    reply_action,
    reply_address,
    reply_token,
)
from adapters.settings import Settings
from domain.commands import Acknowledge, Resolve, Silence, Unacknowledge
from domain.ids import PREFIX_ALERT_GROUP, PREFIX_USER, public_id

NOW = datetime(2026, 3, 20, 9, 30, tzinfo=UTC)
SETTINGS = Settings(base_url="https://oncall.example.com", inbound_email_domain="oncall.example.com")
ALICE = UUID("5f0c2a1e-8c53-4b7e-9a41-0d6f2b9c1e77")
GROUP = public_id(PREFIX_ALERT_GROUP, UUID("0b7d5e39-2f4a-4c61-8d0e-6a9b3c2f1e44"))


@pytest.fixture(autouse=True)
def fixed_secret_key(monkeypatch):
    """The key from the environment, as a deployment on several hosts sets it (no key file)."""
    monkeypatch.setenv("TOCSIN_SECRET_KEY", "unit-test-secret-key")


def token_of(url: str) -> str:
    assert url.startswith("https://oncall.example.com/a/")
    return url.removeprefix("https://oncall.example.com/a/")


# --- action links ------------------------------------------------------------------------------


def test_each_link_grants_its_own_action_on_the_group_to_the_user_until_the_lifetime_ends():
    links = action_links(SETTINGS, ALICE, "alice", GROUP, NOW)
    assert list(links) == ["acknowledge", "resolve", "silence", "unacknowledge"]
    assert len(set(links.values())) == 4
    for action, url in links.items():
        grant = read_action_token(SETTINGS, token_of(url), NOW + timedelta(days=6, hours=23))
        assert (grant.user_id, grant.username, grant.group_id, grant.action) == (ALICE, "alice", GROUP, action)
        assert grant.expires_at == NOW + timedelta(days=7)
    assert action_link(SETTINGS, ALICE, "alice", GROUP, "resolve", NOW) == links["resolve"]


def test_a_link_expires_after_the_configured_lifetime():
    token = action_token(SETTINGS, ALICE, "alice", GROUP, "acknowledge", NOW)
    with pytest.raises(ExpiredToken) as expired:
        read_action_token(SETTINGS, token, NOW + timedelta(days=7))
    assert expired.value.expires_at == NOW + timedelta(days=7)

    hourly = Settings(base_url=SETTINGS.base_url, action_link_lifetime=3600)
    token = action_token(hourly, ALICE, "alice", GROUP, "acknowledge", NOW)
    assert read_action_token(hourly, token, NOW + timedelta(minutes=59)).action == "acknowledge"
    with pytest.raises(ExpiredToken):
        read_action_token(hourly, token, NOW + timedelta(hours=1))


def test_the_lifetime_setting_comes_from_the_environment_and_must_be_positive_seconds():
    assert Settings.from_env({}).action_link_lifetime == 7 * 24 * 3600
    assert Settings.from_env({"TOCSIN_ACTION_LINK_LIFETIME": "86400"}).action_link_lifetime == 86400
    for wrong in ("0", "-5", "1.5", "a week"):
        with pytest.raises(ValueError, match="TOCSIN_ACTION_LINK_LIFETIME must be a positive number of seconds"):
            Settings.from_env({"TOCSIN_ACTION_LINK_LIFETIME": wrong})


def resigned_claims(token: str, **changes) -> str:
    """The token's claims with ``changes``, put back with the original signature."""
    payload, signature = token.rsplit(".", 1)
    compressed = payload.startswith(".")  # itsdangerous's mark of a zlib-compressed payload
    data = base64.urlsafe_b64decode(payload.lstrip(".") + "=" * (-len(payload.lstrip(".")) % 4))
    claims = json.loads(zlib.decompress(data) if compressed else data)
    claims.update(changes)
    data = json.dumps(claims, separators=(",", ":")).encode()
    changed = base64.urlsafe_b64encode(zlib.compress(data) if compressed else data).decode().rstrip("=")
    return f"{'.' if compressed else ''}{changed}.{signature}"


def test_a_token_cannot_be_turned_into_another_action_group_user_or_expiry():
    token = action_token(SETTINGS, ALICE, "alice", GROUP, "acknowledge", NOW)
    assert read_action_token(SETTINGS, resigned_claims(token), NOW).action == "acknowledge"  # the helper is faithful
    other_group = public_id(PREFIX_ALERT_GROUP, uuid4())
    for changes in ({"a": "resolve"}, {"g": other_group}, {"u": uuid4().hex}, {"n": "admin"}, {"e": 4102444800}):
        with pytest.raises(InvalidToken):
            read_action_token(SETTINGS, resigned_claims(token, **changes), NOW)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature changed
        lambda t: t[: len(t) // 2],  # cut short, as by a line wrap
        lambda t: "",
        lambda t: "not-a-token",
        lambda t: t + "\x00",
        lambda t: t * 20,  # far too long
    ],
)
def test_a_changed_or_cut_token_is_invalid(mangle):
    token = action_token(SETTINGS, ALICE, "alice", GROUP, "silence", NOW)
    with pytest.raises(InvalidToken):
        read_action_token(SETTINGS, mangle(token), NOW)


def test_only_tokens_signed_for_links_with_this_servers_key_are_accepted(monkeypatch):
    token = action_token(SETTINGS, ALICE, "alice", GROUP, "acknowledge", NOW)
    claims = {"u": ALICE.hex, "n": "alice", "g": GROUP, "a": "acknowledge", "e": int(NOW.timestamp()) + 60}
    # The same key with another purpose (Flask's session cookies have their own salt) grants nothing.
    session_like = URLSafeSerializer("unit-test-secret-key", salt="cookie-session").dumps(claims)
    with pytest.raises(InvalidToken):
        read_action_token(SETTINGS, session_like, NOW)
    monkeypatch.setenv("TOCSIN_SECRET_KEY", "another-servers-key")
    with pytest.raises(InvalidToken):
        read_action_token(SETTINGS, token, NOW)


def test_there_is_no_link_for_other_actions():
    with pytest.raises(ValueError, match="no action link for 'unresolve'"):
        action_link(SETTINGS, ALICE, "alice", GROUP, "unresolve", NOW)


def test_each_action_runs_its_command_and_silence_lasts_30_minutes():
    group_id = uuid4()
    assert set(ACTIONS) == {"acknowledge", "resolve", "silence", "unacknowledge"}
    assert command_for("acknowledge", group_id, "alice", NOW) == Acknowledge(group_id=group_id, by="alice", at=NOW)
    assert command_for("resolve", group_id, "alice", NOW) == Resolve(group_id=group_id, by="alice", at=NOW)
    assert command_for("unacknowledge", group_id, "alice", NOW) == Unacknowledge(group_id=group_id, by="alice", at=NOW)
    assert command_for("silence", group_id, "alice", NOW) == Silence(group_id=group_id, by="alice", at=NOW, delay=1800)
    assert SILENCE_SECONDS == 1800


def test_only_existing_editors_and_admins_may_act():
    assert actor_refusal({"username": "alice", "role": "editor"}, "alice") is None
    assert actor_refusal({"username": "root", "role": "admin"}, "root") is None
    assert actor_refusal({"username": "vera", "role": "viewer"}, "vera") == (
        "vera is a viewer: only editors and admins can act on alert groups."
    )
    assert actor_refusal(None, "bob") == "The user bob no longer exists."


# --- reply addresses ---------------------------------------------------------------------------


def test_a_reply_address_fits_a_mail_address_and_survives_a_change_of_case():
    address = reply_address(SETTINGS, reply_token(SETTINGS, ALICE, GROUP, NOW))
    local, _, domain = address.rpartition("@")
    assert domain == "oncall.example.com"
    assert local.startswith("ack+") and len(local) <= 64  # RFC 5321's limit for a local part
    for seen in (local, local.lower(), local.upper(), "Ack+" + local[4:]):
        grant = read_reply_token(SETTINGS, seen, NOW + timedelta(days=6))
        assert (grant.user_id, grant.group_id) == (public_id(PREFIX_USER, ALICE), GROUP)
        assert grant.expires_at == NOW + timedelta(days=7)
    with pytest.raises(ExpiredToken):
        read_reply_token(SETTINGS, local, NOW + timedelta(days=7))


def test_a_reply_address_cannot_be_moved_to_another_group_or_user(monkeypatch):
    local = "ack+" + reply_token(SETTINGS, ALICE, GROUP, NOW)
    group, user, expires, signature = local[4:].split(".")
    other_group = public_id(PREFIX_ALERT_GROUP, uuid4())
    other_user = public_id(PREFIX_USER, uuid4())
    for forged in (
        f"ack+{other_group}.{user}.{expires}.{signature}",
        f"ack+{group}.{other_user}.{expires}.{signature}",
        f"ack+{group}.{user}.ZZZZZZ.{signature}",  # a later expiry
        f"ack+{group}.{user}.{expires}.{'A' * len(signature)}",
        f"ack+{group}.{user}.{expires}",
        "ack+",
        "ack+" + "A" * 500,
        local[4:],  # without the prefix: an integration's address, not a reply's
    ):
        with pytest.raises(InvalidToken):
            read_reply_token(SETTINGS, forged, NOW)
    monkeypatch.setenv("TOCSIN_SECRET_KEY", "another-servers-key")
    with pytest.raises(InvalidToken):
        read_reply_token(SETTINGS, local, NOW)


def test_reply_tokens_are_made_for_alert_groups_only():
    with pytest.raises(ValueError, match="not an alert group id"):
        reply_token(SETTINGS, ALICE, "not-a-group", NOW)


def test_the_reply_address_is_at_the_inbound_domain_or_this_host_and_absent_without_a_receiver():
    token = reply_token(SETTINGS, ALICE, GROUP, NOW)
    assert reply_address(Settings(base_url="https://oncall.example.com"), token) == f"ack+{token}@oncall.example.com"
    assert reply_address(Settings(base_url="http://127.0.0.1:8080"), token) == f"ack+{token}@[127.0.0.1]"
    assert reply_address(Settings(base_url="http://[::1]:8080"), token) == f"ack+{token}@[IPv6:::1]"
    assert reply_address(Settings(inbound_email_domain="mail.example.org"), token) == f"ack+{token}@mail.example.org"
    assert reply_address(Settings(smtp_address=""), token) is None


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("ack", "acknowledge"),
        ("Ack!\n\nOn Friday, Tocsin wrote:\n> Resolve: https://...", "acknowledge"),
        ("ACKNOWLEDGE, on it", "acknowledge"),
        ("\n\n  resolve  \n", "resolve"),
        ("Resolve.", "resolve"),
        ("> ack\n>> ack\nresolve", "resolve"),
        ("\ufeffack", "acknowledge"),
        ("Looking into it, ack later", None),
        ("acked", None),
        ("On Friday, Tocsin wrote:\n> ack", None),
        ("> ack", None),
        ("", None),
        ("silence", None),
        ("unacknowledge", None),
    ],
)
def test_the_first_word_not_quoted_says_what_a_reply_does(text, action):
    assert reply_action(text) == action
