"""Personal notification rules and channel addresses through the API, on both backends: OnCall's
shapes, order, filters and refusals; who may change what; where a user is reached, checked when
saved and never shown in full to anyone else; and the read model rebuilt from the events."""

from __future__ import annotations

import dataclasses
import json
from uuid import UUID

import pytest

from domain.notification_rules import FALLBACK_STEPS, NotificationStep, rules_for
from tests.integration.test_users_and_teams import make_user, token_client
from tocsin.cli import create_token

FORBIDDEN = (403, {"detail": "You do not have permission to perform this action."})
RULES = "/api/v1/personal_notification_rules/"


def add_rule(client, user: dict, **fields) -> dict:
    response = client.post(RULES, json={"user_id": user["id"], **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def listed(client, query: str = "") -> list[dict]:
    response = client.get(f"{RULES}{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"]


def steps_of(runtime, user: dict, important: bool) -> list[NotificationStep]:
    """What the escalation engine will follow for the user, from the event store."""
    return rules_for(runtime.config.notification_rules(UUID(user["uuid"])), important)


@pytest.fixture
def alice(client, runtime):
    user = make_user(client, "alice", email="alice@example.com", role="editor")
    user["uuid"] = runtime.db.query_one("SELECT uuid FROM users WHERE id = %s", (user["id"],))["uuid"]
    return user


def as_user(app, runtime, username: str):
    return token_client(app, create_token(runtime, username, username=username))


# --- OnCall's shapes ------------------------------------------------------------------------------


def test_rules_in_oncalls_shape_ordered_by_user_list_and_position(client, runtime, alice):
    bob = make_user(client, "bob", role="viewer")
    sms = add_rule(client, alice, type="notify_by_sms")
    assert sms == {"id": sms["id"], "user_id": alice["id"], "position": 0, "type": "notify_by_sms", "important": False}
    assert sms["id"].startswith("N") and len(sms["id"]) == 13
    wait = add_rule(client, alice, type="wait", position=0)
    assert wait == {"id": wait["id"], "user_id": alice["id"], "position": 0, "type": "wait", "duration": 300,
                    "important": False}  # fmt: skip
    call = add_rule(client, alice, type="notify_by_phone_call", important=True)
    bobs = add_rule(client, bob, type="notify_by_email", position=5)
    assert (call["position"], call["important"], bobs["position"]) == (0, True, 0)

    everything = client.get(RULES).get_json()
    assert (everything["count"], everything["page_size"], everything["total_pages"]) == (4, 50, 1)
    assert [r["id"] for r in everything["results"]] == [wait["id"], sms["id"], call["id"], bobs["id"]]
    assert client.get(f"{RULES}{sms['id']}/").get_json() == {**sms, "position": 1}
    assert [r["id"] for r in listed(client, f"?user_id={alice['id']}")] == [wait["id"], sms["id"], call["id"]]
    assert [r["id"] for r in listed(client, "?important=true")] == [call["id"]]
    assert [r["id"] for r in listed(client, f"?user_id={alice['id']}&important=false")] == [wait["id"], sms["id"]]

    # What escalation follows, from the events: each list, and the email fallback for an empty one.
    assert steps_of(runtime, alice, False) == [NotificationStep("wait", 300), NotificationStep("notify_by_sms")]
    assert steps_of(runtime, alice, True) == [NotificationStep("notify_by_phone_call")]
    bob["uuid"] = runtime.db.query_one("SELECT uuid FROM users WHERE id = %s", (bob["id"],))["uuid"]
    assert steps_of(runtime, bob, True) == list(FALLBACK_STEPS)


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"type": "wait"}, {"user_id": ["This field is required."]}),
        ({"user_id": "U111111111111", "type": "wait"}, {"detail": "User does not exist"}),
        ({"user_id": "a\x00b", "type": "wait"}, {"user_id": ["Null characters are not allowed."]}),
        ({"user_id": "{alice}"}, {"type": "Type is required"}),
        ({"user_id": "{alice}", "type": "notify_by_fax"}, {"type": "Invalid type"}),
        ({"user_id": "{alice}", "type": ["wait"]}, {"type": "Invalid type"}),
        ({"user_id": "{alice}", "type": "notify_by_sms", "duration": 300}, {"duration": "Duration can't be set"}),
        ({"user_id": "{alice}", "type": "wait", "duration": 61}, {"duration": ['"61" is not a valid choice.']}),
        ({"user_id": "{alice}", "type": "wait", "duration": "soon"}, {"detail": "Invalid duration format"}),
        ({"user_id": "{alice}", "type": "wait", "duration": 10**30}, {"detail": "Invalid duration format"}),
        ({"user_id": "{alice}", "type": "wait", "duration": True}, {"detail": "Invalid duration format"}),
        ({"user_id": "{alice}", "type": "wait", "position": -2}, {"detail": "Invalid value for position field"}),
        ({"user_id": "{alice}", "type": "wait", "position": "1"}, {"position": ["A valid integer is required."]}),
        ({"user_id": "{alice}", "type": "wait", "important": "maybe"}, {"important": ["Not a valid boolean."]}),
    ],
)  # fmt: skip
def test_invalid_rules_are_refused_with_oncalls_texts(client, alice, body, expected):
    body = {name: alice["id"] if value == "{alice}" else value for name, value in body.items()}
    response = client.post(RULES, json=body)
    assert (response.status_code, response.get_json()) == (400, expected)
    for not_an_object in ([1], "x", None):
        response = client.post(RULES, json=not_an_object)
        assert (response.status_code, response.get_json()) == (400, {"detail": "A JSON object is expected."})
    assert listed(client) == []


def test_list_filters_refuse_what_oncall_refuses(client, alice):
    for query, detail in (("?important=yes", "Important is not bool"), ("?user_id=U111111111111", "User not found.")):
        response = client.get(f"{RULES}{query}")
        assert (response.status_code, response.get_json()) == (400, {"detail": detail})
    assert client.get(f"{RULES}N111111111111/").status_code == 404


def test_waits_take_seconds_or_a_clock_and_a_huge_position_is_the_end(client, alice):
    first = add_rule(client, alice, type="wait", duration="00:15:00")
    assert first["duration"] == 900
    last = add_rule(client, alice, type="notify_by_slack", position=2**40)
    assert last["position"] == 1


# --- changes ------------------------------------------------------------------------------------


def test_updates_change_type_duration_and_position_but_not_user_or_list(client, runtime, alice):
    bob = make_user(client, "bob")
    wait = add_rule(client, alice, type="wait", duration=900)
    sms = add_rule(client, alice, type="notify_by_sms")
    email = add_rule(client, alice, type="notify_by_email")
    url = f"{RULES}{wait['id']}/"

    kept = client.put(url, json={"type": "wait"}).get_json()  # a wait keeps its duration
    assert kept["duration"] == 900
    longer = client.patch(url, json={"duration": 3600, "user_id": bob["id"], "important": True}).get_json()
    assert (longer["duration"], longer["user_id"], longer["important"]) == (3600, alice["id"], False)
    to_notify = client.put(url, json={"type": "notify_by_telegram"}).get_json()
    assert to_notify == {"id": wait["id"], "user_id": alice["id"], "position": 0, "type": "notify_by_telegram",
                         "important": False}  # fmt: skip
    response = client.patch(url, json={"duration": 300})
    assert (response.status_code, response.get_json()) == (400, {"duration": "Duration can't be set"})
    back = client.put(url, json={"type": "wait"}).get_json()
    assert back["duration"] == 300  # a step that becomes a wait waits the default

    moved = client.put(url, json={"position": -1}).get_json()
    assert moved["position"] == 2
    assert [r["id"] for r in listed(client)] == [sms["id"], email["id"], wait["id"]]
    swapped = client.put(url, json={"position": 0, "manual_order": True}).get_json()
    assert swapped["position"] == 0  # trades places with the first (Terraform's manual_order)
    assert [r["id"] for r in listed(client)] == [wait["id"], email["id"], sms["id"]]

    assert client.delete(f"{RULES}{email['id']}/").status_code == 204
    assert [(r["id"], r["position"]) for r in listed(client)] == [(wait["id"], 0), (sms["id"], 1)]
    assert client.get(f"{RULES}{email['id']}/").status_code == 404
    assert client.delete(f"{RULES}{email['id']}/").status_code == 404


def test_a_deleted_users_rules_leave_with_them(client, runtime, alice):
    add_rule(client, alice, type="notify_by_sms")
    kept = add_rule(client, make_user(client, "bob"), type="wait")
    assert client.delete(f"/api/v1/users/{alice['id']}/").status_code == 204
    assert [r["id"] for r in listed(client)] == [kept["id"]]
    response = client.post(RULES, json={"user_id": alice["id"], "type": "wait"})
    assert (response.status_code, response.get_json()) == (400, {"detail": "User does not exist"})


def test_users_change_their_own_rules_and_admins_anyones(app, runtime, client, alice):
    bob = make_user(client, "bob", role="viewer")
    as_alice, as_bob = as_user(app, runtime, "alice"), as_user(app, runtime, "bob")
    own = as_alice.post(RULES, json={"user_id": alice["id"], "type": "notify_by_sms"})
    assert own.status_code == 201
    bobs = as_bob.post(RULES, json={"user_id": bob["id"], "type": "notify_by_email"}).get_json()
    assert bobs["user_id"] == bob["id"]  # a viewer sets their own rules too

    for call in (
        lambda: as_bob.post(RULES, json={"user_id": alice["id"], "type": "wait"}),
        lambda: as_bob.put(f"{RULES}{own.get_json()['id']}/", json={"type": "wait"}),
        lambda: as_bob.delete(f"{RULES}{own.get_json()['id']}/"),
        lambda: as_alice.delete(f"{RULES}{bobs['id']}/"),
    ):
        response = call()
        assert (response.status_code, response.get_json()) == FORBIDDEN
    assert len(as_bob.get(RULES).get_json()["results"]) == 2  # everyone reads every rule, as in OnCall

    assert client.put(f"{RULES}{bobs['id']}/", json={"type": "notify_by_slack"}).status_code == 200  # an admin
    assert as_alice.delete(f"{RULES}{own.get_json()['id']}/").status_code == 204


def test_the_rules_read_model_is_rebuilt_from_the_events(client, runtime, alice):
    add_rule(client, alice, type="wait", duration=60)
    moved = add_rule(client, alice, type="notify_by_sms")
    add_rule(client, alice, type="notify_by_email", important=True)
    removed = add_rule(client, alice, type="notify_by_slack")
    client.put(f"{RULES}{moved['id']}/", json={"position": 0})
    client.delete(f"{RULES}{removed['id']}/")
    before = listed(client)
    runtime.rebuild_read_models()
    assert listed(client) == before and len(before) == 3


# --- channel addresses --------------------------------------------------------------------------

TWILIO = "twilio://AC735c307c62944b5a66ab1ee0a8f4a3ab:f0e6b9a1b2c3d4e5f6a7b8c9d0e1f2a3@15551234567/15557654321"
SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
WEBHOOK = "https://hooks.example.com/services/alice/s3cr3tT0ken?sig=abc"


def channels_url(user: dict) -> str:
    return f"/api/v1/users/{user['id']}/notification_channels"


def test_a_user_sets_where_they_are_reached_and_nobody_sees_the_secrets(app, runtime, client, alice):
    make_user(client, "bob", role="viewer")
    as_alice, as_bob = as_user(app, runtime, "alice"), as_user(app, runtime, "bob")
    response = as_alice.put(channels_url(alice), json={"sms": TWILIO, "slack": SLACK, "webhook": WEBHOOK})
    assert response.status_code == 200, response.get_json()
    own = response.get_json()
    assert set(own) == {"sms", "slack", "webhook"}
    assert own["webhook"] == "https://hooks.example.com/****************"
    assert own["sms"].startswith("twilio://") and "f0e6b9a1b2c3d4e5f6a7b8c9d0e1f2a3" not in own["sms"]
    assert own["slack"].startswith("slack://") and "TIiajkdnlazkcOXrIdevi7FQ" not in own["slack"]
    assert client.get(channels_url(alice)).get_json() == own  # an admin sees what the user sees
    assert as_alice.get("/api/v1/users/current/notification_channels").get_json() == own
    assert as_bob.get(channels_url(alice)).get_json() == {
        "sms": "twilio://****************", "slack": "slack://****************", "webhook": "https://****************",
    }  # fmt: skip
    assert "notification_channels" not in client.get(f"/api/v1/users/{alice['id']}/").get_json()  # OnCall's shape
    # Delivery reads the address from the events; the read model never holds it.
    stored = runtime.config.get_user(UUID(alice["uuid"])).notification_channels
    assert {slot: address["url"] for slot, address in stored.items()} == {"sms": TWILIO, "slack": SLACK,
                                                                         "webhook": WEBHOOK}  # fmt: skip
    row = runtime.db.query_one("SELECT * FROM users WHERE id = %s", (alice["id"],))
    assert not any(secret in json.dumps(row) for secret in ("f0e6b9a1b2c3d4e5", "TIiajkdnlazk", "s3cr3tT0ken"))

    # The masked form sent back keeps an address; null removes one; others stay.
    again = as_alice.patch(channels_url(alice), json={"sms": own["sms"], "slack": None}).get_json()
    assert again == {"sms": own["sms"], "webhook": own["webhook"]}
    stored = runtime.config.get_user(UUID(alice["uuid"])).notification_channels
    assert stored["sms"]["url"] == TWILIO and "slack" not in stored

    response = as_bob.put(channels_url(alice), json={"sms": None})
    assert (response.status_code, response.get_json()) == FORBIDDEN
    assert client.patch(channels_url(alice), json={"sms": None}).get_json() == {"webhook": own["webhook"]}  # admin


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"sms": "nosuch://x"}, {"sms": ['Apprise does not support "nosuch://" URLs.']}),
        ({"slack": "mailto://a:b@example.com"}, {"slack": [('"mailto://" URLs are not accepted: they do not send over '
                                                           "HTTP, where outgoing addresses are checked.")]}),
        ({"telegram": "tgram://nobot"}, {"telegram": [('Apprise cannot use this "tgram://" URL: check its parts '
                                                      "against the service's URL format.")]}),
        ({"webhook": "ftp://example.com/"}, {"webhook": ["Enter a valid URL."]}),
        ({"webhook": "http://169.254.169.254/latest"}, {"webhook": [
            ("This address is not allowed: 169.254.169.254 is a link-local address (not listed in "
            "TOCSIN_OUTGOING_ALLOW).")]}),
        ({"webhook": "https://x.example.com/\x00"}, {"webhook": ["A URL may not contain spaces or control characters."]}),
        ({"sms": 5}, {"sms": ["Not a valid string."]}),
        ({"email": "a@example.com"}, {"email": ["Email goes to the user's email address: change it on the user."]}),
        ({"fax": "x"}, {"fax": [("Unknown channel: use one of webhook, slack, mattermost, telegram, sms, phone_call, "
                                "mobile_app, mobile_app_critical.")]}),
        ([TWILIO], {"detail": "A JSON object is expected."}),
    ],
)  # fmt: skip
def test_addresses_that_cannot_be_used_are_refused_when_saved(client, alice, body, expected):
    response = client.put(channels_url(alice), json=body)
    assert (response.status_code, response.get_json()) == (400, expected)
    assert client.get(channels_url(alice)).get_json() == {}


def test_hostile_channel_bodies_are_refused_briefly(client, alice):
    many = {f"slot{n}": "x" for n in range(10_000)}
    response = client.put(channels_url(alice), json=many)
    assert response.status_code == 400 and len(response.get_json()) == 10
    deep = "[" * 100_000 + "]" * 100_000
    response = client.put(channels_url(alice), data=deep, content_type="application/json")
    assert (response.status_code, response.get_json()) == (400, {"detail": "A JSON object is expected."})
    response = client.put(channels_url(alice), json={"sms": "tgram://" + "a" * 1_000_000})
    assert (response.status_code, response.get_json()) == (
        400, {"sms": ["Ensure this URL has no more than 2048 characters."]},
    )  # fmt: skip


def test_an_internal_webhook_address_needs_the_allow_list(client, runtime, alice):
    response = client.put(channels_url(alice), json={"webhook": "http://10.0.0.7:9000/hook"})
    assert response.status_code == 400 and "10.0.0.7 is a private address" in response.get_json()["webhook"][0]
    runtime.settings = dataclasses.replace(runtime.settings, outgoing_allow="10.0.0.0/8")
    response = client.put(channels_url(alice), json={"webhook": "http://10.0.0.7:9000/hook"})
    assert (response.status_code, response.get_json()) == (200, {"webhook": "http://10.0.0.7:9000/****************"})


def test_channel_addresses_survive_a_rebuild_and_leave_nothing_for_unknown_users(client, runtime, alice):
    client.put(channels_url(alice), json={"sms": TWILIO})
    before = client.get(channels_url(alice)).get_json()
    runtime.rebuild_read_models()
    assert client.get(channels_url(alice)).get_json() == before
    assert client.get("/api/v1/users/U111111111111/notification_channels").status_code == 404
