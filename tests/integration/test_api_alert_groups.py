"""``/api/v1/alert_groups/`` and ``/api/v1/alerts/`` over HTTP, as an OnCall API client sees them.

Grouping, filters, pagination, actions with OnCall's refusal texts, the timeline, roles, and the
timed end of a silence. Every test runs on SQLite and on PostgreSQL with the real workers.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import eventually, load_payload
from tests.integration.conftest import send, wait_for_groups
from tocsin.cli import create_token

AM = "captured/alertmanager/"
AM_FIRING = AM + "am-02-firing-group-3-alerts.json"  # groupKey {}:{alertname="InstanceDown"}
AM_FIRING_AGAIN = AM + "am-08-firing-with-1-resolved.json"  # same groupKey
AM_RESOLVED = AM + "am-10-resolved-group.json"  # same groupKey, status resolved
BASE = "http://tocsin.test"
FORBIDDEN = {"detail": "You do not have permission to perform this action."}


# --- helpers -------------------------------------------------------------------------------------


def get_group(client, group_id: str) -> dict:
    response = client.get(f"/api/v1/alert_groups/{group_id}/")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def act(client, group_id: str, action: str, **body):
    return client.post(f"/api/v1/alert_groups/{group_id}/{action}", json=body or None)


def act_ok(client, group_id: str, action: str, **body) -> dict:
    """Run an action that must succeed (200, empty body) and return the group as the API shows it next."""
    response = act(client, group_id, action, **body)
    assert response.status_code == 200, (action, response.get_json())
    assert response.data == b""
    return get_group(client, group_id)


def refused(client, group_id: str, action: str, **body) -> dict:
    response = act(client, group_id, action, **body)
    assert response.status_code == 400, (action, response.status_code, response.data)
    return response.get_json()


def timeline_of(client, group_id: str) -> list[dict]:
    response = client.get(f"/api/v1/alert_groups/{group_id}/timeline/")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"]


def alerts_of(client, group_id: str) -> list[dict]:
    return client.get(f"/api/v1/alerts/?alert_group_id={group_id}").get_json()["results"]


def list_groups(client, **query) -> dict:
    response = client.get("/api/v1/alert_groups/", query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def firing_group(client, make_integration) -> dict:
    """One firing Alertmanager group (InstanceDown), created through the integration link."""
    integration = make_integration("alertmanager")
    send(client, integration, AM_FIRING)
    [group] = wait_for_groups(client, integration["id"], 1)
    return group


@pytest.fixture
def webhook(make_integration) -> dict:
    return make_integration("webhook")


def webhook_groups(client, webhook: dict, count: int) -> list[dict]:
    """``count`` separate groups: the webhook groups identical bodies only."""
    for n in range(count):
        send(client, webhook, {"n": n})
    return wait_for_groups(client, webhook["id"], count)


# --- grouping through HTTP -----------------------------------------------------------------------


def test_notifications_of_one_alertmanager_group_share_an_alert_group(client, make_integration):
    integration = make_integration("alertmanager")

    send(client, integration, AM_FIRING)
    send(client, integration, AM_FIRING_AGAIN)

    [group] = wait_for_groups(client, integration["id"], 1, alerts_count=2)
    assert group["state"] == "firing"
    assert group["title"] == "InstanceDown "
    assert group["last_alert"]["payload"]["alerts"][0]["status"] == "resolved"  # am-08 came last


def test_resolved_notification_resolves_the_group_by_the_alert_source(client, make_integration):
    integration = make_integration("alertmanager")
    send(client, integration, AM_FIRING)
    wait_for_groups(client, integration["id"], 1)

    send(client, integration, AM_RESOLVED)

    [group] = wait_for_groups(client, integration["id"], 1, state="resolved")
    assert group["alerts_count"] == 2
    assert group["resolved_by"] is None  # not a user
    assert group["resolved_at"] is not None
    assert timeline_of(client, group["id"])[-1]["action"] == "Resolved by alert source"


def test_firing_after_resolve_opens_a_new_group(client, make_integration):
    integration = make_integration("alertmanager")
    send(client, integration, AM_FIRING)
    send(client, integration, AM_RESOLVED)
    [resolved] = wait_for_groups(client, integration["id"], 1, state="resolved")

    send(client, integration, AM_FIRING)

    newest, oldest = wait_for_groups(client, integration["id"], 2)
    assert oldest["id"] == resolved["id"]
    assert oldest["state"] == "resolved"
    assert oldest["alerts_count"] == 2
    assert newest["state"] == "firing"
    assert newest["alerts_count"] == 1


def test_a_resolved_group_is_not_reopened_by_unresolve_for_grouping(client, make_integration):
    integration = make_integration("alertmanager")
    send(client, integration, AM_FIRING)
    [group] = wait_for_groups(client, integration["id"], 1)
    act_ok(client, group["id"], "resolve")
    act_ok(client, group["id"], "unresolve")

    send(client, integration, AM_FIRING_AGAIN)

    groups = wait_for_groups(client, integration["id"], 2)
    assert {g["id"]: g["alerts_count"] for g in groups}[group["id"]] == 1


# --- list, filters, get ---------------------------------------------------------------------------


def test_list_filters_by_id_and_integration(client, make_integration, webhook):
    other = make_integration("webhook")
    first, second = webhook_groups(client, webhook, 2)
    send(client, other, {"elsewhere": True})
    wait_for_groups(client, other["id"], 1)

    assert list_groups(client)["count"] == 3
    by_integration = list_groups(client, integration_id=webhook["id"])
    assert {g["id"] for g in by_integration["results"]} == {first["id"], second["id"]}
    by_id = list_groups(client, id=first["id"])
    assert [g["id"] for g in by_id["results"]] == [first["id"]]
    assert list_groups(client, id="INOSUCHGROUP1")["results"] == []


def test_list_filters_by_state_where_new_means_firing(client, webhook):
    firing, acknowledged, resolved, silenced = webhook_groups(client, webhook, 4)
    act_ok(client, acknowledged["id"], "acknowledge")
    act_ok(client, resolved["id"], "resolve")
    act_ok(client, silenced["id"], "silence", delay=3600)

    def ids(state: str) -> list[str]:
        return [g["id"] for g in list_groups(client, integration_id=webhook["id"], state=state)["results"]]

    assert ids("new") == [firing["id"]]
    assert ids("acknowledged") == [acknowledged["id"]]
    assert ids("resolved") == [resolved["id"]]
    assert ids("silenced") == [silenced["id"]]


def test_state_filter_is_case_insensitive_and_empty_means_no_filter(client, webhook):
    firing, resolved = webhook_groups(client, webhook, 2)
    act_ok(client, resolved["id"], "resolve")

    assert [g["id"] for g in list_groups(client, state="NEW")["results"]] == [firing["id"]]
    assert [g["id"] for g in list_groups(client, state="Resolved")["results"]] == [resolved["id"]]
    assert list_groups(client, state="")["count"] == 2


@pytest.mark.parametrize("state", ["firing", "open", "new,resolved"])
def test_unknown_state_filter_is_a_400(client, state):
    response = client.get("/api/v1/alert_groups/", query_string={"state": state})

    assert response.status_code == 400
    assert response.get_json() == {"state": "Must be one of the following: new, acknowledged, resolved, silenced"}


def test_list_filters_by_started_at_range(client, webhook):
    [group] = webhook_groups(client, webhook, 1)
    started = datetime.strptime(group["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(microsecond=0)
    fmt = "%Y-%m-%dT%H:%M:%S"

    def ids(start: datetime, end: datetime) -> list[str]:
        page = list_groups(client, started_at=f"{start.strftime(fmt)}_{end.strftime(fmt)}")
        return [g["id"] for g in page["results"]]

    assert ids(started, started) == [group["id"]]  # both ends inclusive, to the second
    assert ids(started - timedelta(hours=1), started + timedelta(hours=1)) == [group["id"]]
    assert ids(started - timedelta(hours=2), started - timedelta(hours=1)) == []
    assert ids(started + timedelta(seconds=1), started + timedelta(hours=1)) == []


@pytest.mark.parametrize("value", ["yesterday", "2024-01-01T00:00:00", "2024-01-01_2024-01-02"])
def test_malformed_started_at_is_a_400(client, value):
    response = client.get("/api/v1/alert_groups/", query_string={"started_at": value})

    assert response.status_code == 400
    assert "started_at" in response.get_json()


def test_pagination_in_oncalls_shape(client, webhook):
    newest, middle, oldest = webhook_groups(client, webhook, 3)

    first = list_groups(client, integration_id=webhook["id"], perpage=1)

    assert first["count"] == 3
    assert first["page_size"] == 1
    assert first["current_page_number"] == 1
    assert first["total_pages"] == 3
    assert first["previous"] is None
    assert [g["id"] for g in first["results"]] == [newest["id"]]  # newest first
    assert first["next"].startswith(f"{BASE}/api/v1/alert_groups/?")
    query = parse_qs(urlsplit(first["next"]).query)
    assert query == {"integration_id": [webhook["id"]], "page": ["2"], "perpage": ["1"]}

    second = client.get(first["next"].removeprefix(BASE)).get_json()
    assert second["current_page_number"] == 2
    assert [g["id"] for g in second["results"]] == [middle["id"]]
    assert second["previous"].startswith(f"{BASE}/api/v1/alert_groups/?")
    assert parse_qs(urlsplit(second["previous"]).query)["page"] == ["1"]

    beyond = list_groups(client, integration_id=webhook["id"], perpage=1, page=99)
    assert beyond["current_page_number"] == 3  # a page too far answers the last page
    assert [g["id"] for g in beyond["results"]] == [oldest["id"]]
    assert beyond["next"] is None
    assert beyond["previous"] is not None


@pytest.mark.parametrize("perpage", ["0", "-1", "many"])
def test_invalid_page_size_falls_back_to_the_default(client, perpage):
    page = list_groups(client, perpage=perpage)

    assert page["page_size"] == 50
    assert page["current_page_number"] == 1


def test_get_one_group_in_oncalls_shape(client, firing_group):
    group = get_group(client, firing_group["id"])

    assert group["id"].startswith("I") and len(group["id"]) == 13
    assert group["alerts_count"] == 1
    assert group["state"] == "firing"
    assert group["created_at"].endswith("Z")
    for field in ("resolved_at", "resolved_by", "acknowledged_at", "acknowledged_by", "silenced_at", "team_id"):
        assert group[field] is None, field
    assert group["labels"] == []
    assert group["permalinks"]["web"] == f"{BASE}/alert-groups/{group['id']}"
    assert group["last_alert"]["alert_group_id"] == group["id"]
    assert group["last_alert"]["payload"]["groupKey"] == '{}:{alertname="InstanceDown"}'


def test_unknown_group_is_404(client):
    for path in ("/api/v1/alert_groups/INOSUCHGROUP1/", "/api/v1/alert_groups/INOSUCHGROUP1/timeline/"):
        response = client.get(path)
        assert (response.status_code, response.get_json()) == (404, {"detail": "Not found."}), path
    response = act(client, "INOSUCHGROUP1", "acknowledge")
    assert (response.status_code, response.get_json()) == (404, {"detail": "Not found."})


def test_trailing_slash_is_optional(client, firing_group):
    assert client.get("/api/v1/alert_groups").status_code == 200
    assert client.get(f"/api/v1/alert_groups/{firing_group['id']}").get_json()["id"] == firing_group["id"]
    assert act(client, firing_group["id"], "acknowledge/").status_code == 200


# --- actions -------------------------------------------------------------------------------------


def test_acknowledge_and_unacknowledge(client, firing_group):
    gid = firing_group["id"]

    acknowledged = act_ok(client, gid, "acknowledge")
    assert acknowledged["state"] == "acknowledged"
    assert acknowledged["acknowledged_by"] == "admin"
    assert acknowledged["acknowledged_at"] is not None
    assert refused(client, gid, "acknowledge") == {"detail": "Can't acknowledge an acknowledged alert group"}
    assert refused(client, gid, "silence", delay=60) == {"detail": "Can't silence an acknowledged alert group"}
    assert refused(client, gid, "unsilence") == {"detail": "Can't unsilence an unsilenced alert group"}

    unacknowledged = act_ok(client, gid, "unacknowledge")
    assert unacknowledged["state"] == "firing"
    assert unacknowledged["acknowledged_by"] is None
    assert refused(client, gid, "unacknowledge") == {"detail": "Can't unacknowledge an unacknowledged alert group"}


def test_resolve_and_unresolve(client, firing_group):
    gid = firing_group["id"]

    resolved = act_ok(client, gid, "resolve")
    assert resolved["state"] == "resolved"
    assert resolved["resolved_by"] == "admin"
    assert resolved["resolved_at"] is not None
    assert refused(client, gid, "resolve") == {"detail": "Can't resolve a resolved alert group"}
    assert refused(client, gid, "acknowledge") == {"detail": "Can't acknowledge a resolved alert group"}
    assert refused(client, gid, "silence", delay=60) == {"detail": "Can't silence a resolved alert group"}

    unresolved = act_ok(client, gid, "unresolve")
    assert unresolved["state"] == "firing"
    assert unresolved["resolved_at"] is None
    assert unresolved["resolved_by"] is None
    assert refused(client, gid, "unresolve") == {"detail": "Can't unresolve an unresolved alert group"}


def test_resolving_an_acknowledged_group_and_unresolving_it(client, firing_group):
    gid = firing_group["id"]
    act_ok(client, gid, "acknowledge")

    resolved = act_ok(client, gid, "resolve")
    assert resolved["state"] == "resolved"
    # OnCall checks "acknowledged" before "resolved", so these name the acknowledgement first.
    assert refused(client, gid, "acknowledge") == {"detail": "Can't acknowledge an acknowledged alert group"}
    assert refused(client, gid, "unacknowledge") == {"detail": "Can't unacknowledge a resolved alert group"}

    unresolved = act_ok(client, gid, "unresolve")
    assert unresolved["state"] == "firing"  # unresolve also clears the acknowledgement
    assert unresolved["acknowledged_by"] is None
    assert unresolved["acknowledged_at"] is None


def test_silence_for_a_while_and_unsilence(client, firing_group):
    gid = firing_group["id"]
    before = datetime.now(timezone.utc)

    silenced = act_ok(client, gid, "silence", delay=3600)

    assert silenced["state"] == "silenced"
    assert silenced["silenced_at"] is not None
    until = datetime.strptime(silenced["silenced_until"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before + timedelta(seconds=3590) < until < before + timedelta(seconds=3700)

    resilenced = act_ok(client, gid, "silence", delay=7200)  # silencing again replaces the silence
    assert resilenced["silenced_until"] > silenced["silenced_until"]

    unsilenced = act_ok(client, gid, "unsilence")
    assert unsilenced["state"] == "firing"
    assert unsilenced["silenced_at"] is None
    assert unsilenced["silenced_until"] is None


@pytest.mark.parametrize("delay", [0, -1])
def test_silence_with_delay_zero_or_minus_one_is_forever(client, firing_group, delay):
    silenced = act_ok(client, firing_group["id"], "silence", delay=delay)

    assert silenced["state"] == "silenced"
    assert silenced["silenced_until"] is None
    assert timeline_of(client, firing_group["id"])[-1]["action"] == "Silenced by admin forever"


@pytest.mark.parametrize(
    "body, detail",
    [
        (None, "delay is required"),
        ({}, "delay is required"),
        ({"delai": 60}, "delay is required"),
        ({"delay": None}, "delay is required"),
        ({"delay": -2}, "invalid delay value"),
        ({"delay": "soon"}, "invalid delay value"),
    ],
)
def test_silence_needs_a_valid_delay(client, firing_group, body, detail):
    response = client.post(f"/api/v1/alert_groups/{firing_group['id']}/silence", json=body)

    assert (response.status_code, response.get_json()) == (400, {"detail": detail})
    assert get_group(client, firing_group["id"])["state"] == "firing"


@pytest.mark.parametrize("body", [{"delay": "3600"}, {"delay": 3600.0}])
def test_silence_takes_a_delay_as_leniently_as_oncall(client, firing_group, body):
    response = client.post(f"/api/v1/alert_groups/{firing_group['id']}/silence", json=body)

    assert response.status_code == 200
    assert get_group(client, firing_group["id"])["silenced_until"] is not None


def test_silence_accepts_a_form_encoded_delay(client, firing_group):
    response = client.post(f"/api/v1/alert_groups/{firing_group['id']}/silence", data={"delay": "60"})

    assert response.status_code == 200
    assert get_group(client, firing_group["id"])["state"] == "silenced"


def test_acknowledging_a_silenced_group_ends_the_silence(client, firing_group):
    act_ok(client, firing_group["id"], "silence", delay=3600)

    group = act_ok(client, firing_group["id"], "acknowledge")

    assert group["state"] == "acknowledged"
    assert group["silenced_until"] is None
    assert [e["type"] for e in timeline_of(client, firing_group["id"])][-3:] == [7, 15, 0]


@pytest.mark.parametrize("action, body", [("acknowledge", {}), ("silence", {"delay": 3600})])
def test_acknowledged_and_silenced_groups_keep_collecting_alerts(client, make_integration, action, body):
    integration = make_integration("alertmanager")
    send(client, integration, AM_FIRING)
    [group] = wait_for_groups(client, integration["id"], 1)
    state = act_ok(client, group["id"], action, **body)["state"]

    send(client, integration, AM_FIRING_AGAIN)
    send(client, integration, AM_FIRING)

    [same] = wait_for_groups(client, integration["id"], 1, alerts_count=3)
    assert same["id"] == group["id"]
    assert same["state"] == state  # new alerts do not change the state


def test_timeline_lists_oncall_record_types_in_order(client, firing_group):
    gid = firing_group["id"]
    act_ok(client, gid, "acknowledge")
    act_ok(client, gid, "unacknowledge")
    act_ok(client, gid, "silence", delay=600)
    act_ok(client, gid, "unsilence")
    act_ok(client, gid, "resolve")
    act_ok(client, gid, "unresolve")

    response = client.get(f"/api/v1/alert_groups/{gid}/timeline/")

    assert response.status_code == 200
    body = response.get_json()
    assert body["alert_group_id"] == gid
    entries = body["results"]
    assert [(e["type"], e["action"], e["author"]) for e in entries] == [
        (21, "Incident registered", None),
        (22, "A route is assigned to the incident", None),
        (0, "Acknowledged by admin", "admin"),
        (1, "Unacknowledged by admin", "admin"),
        (7, "Silenced by admin for 10 minutes", "admin"),
        (15, "Unsilenced by admin", "admin"),
        (13, "Resolved by admin", "admin"),
        (14, "Unresolved by admin", "admin"),
    ]
    assert {e["realm"] for e in entries} == {"alert_group"}
    assert entries[1]["details"] == {"route_id": firing_group["route_id"]}
    assert entries[4]["details"]["silence_delay"] == 600
    times = [e["created_at"] for e in entries]
    assert times == sorted(times)


def test_alerts_endpoint_returns_raw_payloads_newest_first(client, make_integration):
    integration = make_integration("alertmanager")
    send(client, integration, AM_FIRING)
    send(client, integration, AM_FIRING_AGAIN)
    [group] = wait_for_groups(client, integration["id"], 1, alerts_count=2)

    page = client.get(f"/api/v1/alerts/?alert_group_id={group['id']}").get_json()

    assert page["count"] == 2
    newest, oldest = page["results"]
    # As OnCall does for Alertmanager v2, the counters are added when the sender omits them.
    assert newest["payload"] == {**json.loads(load_payload(AM_FIRING_AGAIN)), "numFiring": 3, "numResolved": 1}
    assert oldest["payload"] == {**json.loads(load_payload(AM_FIRING)), "numFiring": 3, "numResolved": 0}
    assert {a["alert_group_id"] for a in page["results"]} == {group["id"]}
    assert newest["id"] == group["last_alert"]["id"]
    assert newest["created_at"] >= oldest["created_at"]


def test_alerts_search_matches_the_raw_payload(client, webhook):
    send(client, webhook, {"host": "db-01", "msg": "Disk FULL"})
    send(client, webhook, {"host": "web-01", "msg": "slow"})
    wait_for_groups(client, webhook["id"], 2)

    found = client.get("/api/v1/alerts/?search=disk full").get_json()

    assert [a["payload"]["host"] for a in found["results"]] == ["db-01"]


# --- authentication and roles --------------------------------------------------------------------


def test_missing_or_invalid_token_is_refused(app):
    anonymous = app.test_client()

    for headers in ({}, {"Authorization": "not-a-token"}, {"Authorization": "Bearer not-a-token"}):
        response = anonymous.get("/api/v1/alert_groups/", headers=headers)
        assert (response.status_code, response.get_json()) == (403, {"detail": "Invalid token."}), headers


def test_bearer_prefix_is_accepted(app, admin_token):
    response = app.test_client().get("/api/v1/alert_groups/", headers={"Authorization": f"Bearer {admin_token}"})

    assert response.status_code == 200
    assert response.get_json()["count"] == 0


def test_viewer_reads_but_cannot_act(app, runtime, firing_group):
    viewer = app.test_client()
    viewer.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, "v", "viewer")

    assert [g["id"] for g in viewer.get("/api/v1/alert_groups/").get_json()["results"]] == [firing_group["id"]]
    assert viewer.get(f"/api/v1/alert_groups/{firing_group['id']}/timeline/").status_code == 200
    assert viewer.get("/api/v1/alerts/").get_json()["count"] == 1
    assert viewer.get("/api/v1/integrations/").status_code == 200
    for action, body in (("acknowledge", None), ("resolve", None), ("silence", {"delay": 60})):
        response = viewer.post(f"/api/v1/alert_groups/{firing_group['id']}/{action}", json=body)
        assert (response.status_code, response.get_json()) == (403, FORBIDDEN), action
    response = viewer.post("/api/v1/integrations/", json={"type": "webhook"})
    assert (response.status_code, response.get_json()) == (403, FORBIDDEN)


def test_editor_acts_on_groups_but_cannot_manage_integrations(app, client, runtime, firing_group):
    editor = app.test_client()
    editor.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, "oncall-bot", "editor")

    response = editor.post(f"/api/v1/alert_groups/{firing_group['id']}/acknowledge")
    assert response.status_code == 200
    group = get_group(client, firing_group["id"])
    assert (group["state"], group["acknowledged_by"]) == ("acknowledged", "oncall-bot")
    assert timeline_of(client, firing_group["id"])[-1]["author"] == "oncall-bot"

    response = editor.post("/api/v1/integrations/", json={"type": "webhook"})
    assert (response.status_code, response.get_json()) == (403, FORBIDDEN)
    integration_id = firing_group["integration_id"]
    for method in ("put", "delete"):
        response = getattr(editor, method)(f"/api/v1/integrations/{integration_id}/", json={"name": "x"})
        assert (response.status_code, response.get_json()) == (403, FORBIDDEN), method


# --- timed actions -------------------------------------------------------------------------------


def test_a_timed_silence_ends_by_itself(client, firing_group):
    gid = firing_group["id"]

    silenced = act_ok(client, gid, "silence", delay=1)
    assert silenced["state"] == "silenced"
    assert silenced["silenced_until"] is not None

    # The ticker runs every second: the group fires again shortly after the second is over.
    group = eventually(
        lambda: (g := get_group(client, gid))["state"] == "firing" and g, timeout=6, describe="the auto-unsilence"
    )
    assert group["silenced_until"] is None
    last = timeline_of(client, gid)[-1]
    assert (last["type"], last["action"], last["author"]) == (15, "Unsilenced automatically", None)


def test_silencing_forever_cancels_an_earlier_timed_silence(client, firing_group):
    gid = firing_group["id"]
    act_ok(client, gid, "silence", delay=1)
    act_ok(client, gid, "silence", delay=0)  # replaces the timed silence: forever now

    time.sleep(2.5)  # past the first silence's end and at least one ticker round

    group = get_group(client, gid)
    assert (group["state"], group["silenced_until"]) == ("silenced", None)
    assert "Unsilenced automatically" not in [e["action"] for e in timeline_of(client, gid)]
