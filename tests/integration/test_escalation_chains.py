"""Escalation chains and policies through the API, in OnCall's shapes and with its validation,
on both backends: unique chain names, policies in order within their chain, each step type with
its parameters (and only those), references that must exist, roles, and what deleting a chain
does to the routes that took it."""

from __future__ import annotations

import pytest

from tests.integration.test_users_and_teams import make_team, make_user
from tocsin.cli import create_token

FORBIDDEN = (403, {"detail": "You do not have permission to perform this action."})


def make_chain(client, name: str, **fields) -> dict:
    response = client.post("/api/v1/escalation_chains/", json={"name": name, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def make_policy(client, chain: dict, **fields) -> dict:
    response = client.post("/api/v1/escalation_policies/", json={"escalation_chain_id": chain["id"], **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def policies_of(client, chain: dict) -> list[dict]:
    response = client.get(f"/api/v1/escalation_policies/?escalation_chain_id={chain['id']}")
    assert response.status_code == 200
    return response.get_json()["results"]


def make_schedule(client, name: str) -> dict:
    response = client.post("/api/v1/schedules/", json={"type": "calendar", "name": name, "time_zone": "UTC"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- chains ---------------------------------------------------------------------------------------


def test_chains_in_oncalls_shape_with_unique_names_and_filters(client):
    team = make_team(client, "SRE")
    primary = make_chain(client, "Primary", team_id=team["id"])
    assert set(primary) == {"id", "name", "team_id"} and primary["id"].startswith("F")
    assert (primary["name"], primary["team_id"]) == ("Primary", team["id"])
    secondary = make_chain(client, "Secondary")
    assert secondary["team_id"] is None
    assert client.get(f"/api/v1/escalation_chains/{primary['id']}/").get_json() == primary

    for name in ("Primary", "PRIMARY"):
        response = client.post("/api/v1/escalation_chains/", json={"name": name})
        assert (response.status_code, response.get_json()) == (
            400, {"detail": "Escalation chain with this name already exists"},
        )  # fmt: skip
    response = client.patch(f"/api/v1/escalation_chains/{secondary['id']}/", json={"name": "Primary"})
    assert (response.status_code, response.get_json()) == (
        400, {"detail": "Escalation chain with this name already exists"},
    )  # fmt: skip

    listed = client.get("/api/v1/escalation_chains/").get_json()
    assert [c["name"] for c in listed["results"]] == ["Primary", "Secondary"] and listed["page_size"] == 50
    assert [c["id"] for c in client.get("/api/v1/escalation_chains/?name=Secondary").get_json()["results"]] == [
        secondary["id"]
    ]
    assert [c["id"] for c in client.get("/api/v1/escalation_chains/?team_id=null").get_json()["results"]] == [
        secondary["id"]
    ]
    assert [c["id"] for c in client.get(f"/api/v1/escalation_chains/?team_id={team['id']}").get_json()["results"]] == [
        primary["id"]
    ]

    renamed = client.put(f"/api/v1/escalation_chains/{primary['id']}/", json={"name": "Main", "team_id": None})
    assert renamed.status_code == 200 and renamed.get_json() == {"id": primary["id"], "name": "Main", "team_id": None}
    assert client.delete(f"/api/v1/escalation_chains/{secondary['id']}/").status_code == 204
    assert client.get(f"/api/v1/escalation_chains/{secondary['id']}/").status_code == 404
    make_chain(client, "Secondary")  # the names of renamed and deleted chains are free again
    make_chain(client, "Primary")


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, {"name": ["This field is required."]}),
        ({"name": " "}, {"name": ["This field may not be blank."]}),
        ({"name": "x" * 101}, {"name": ["Ensure this field has no more than 100 characters."]}),
        ({"name": "a\x00b"}, {"name": ["Null characters are not allowed.", "Control characters are not allowed."]}),
        ({"name": "line\nbreak"}, {"name": ["Control characters are not allowed."]}),
        ({"name": {"deep": [1]}}, {"name": ["Not a valid string."]}),
        ({"name": "X", "team_id": "T111111111111"}, {"team_id": ['Invalid pk "T111111111111" - object does not exist.']}),
    ],
)  # fmt: skip
def test_invalid_chains_are_refused(client, body, expected):
    response = client.post("/api/v1/escalation_chains/", json=body)
    assert (response.status_code, response.get_json()) == (400, expected)
    assert client.get("/api/v1/escalation_chains/").get_json()["count"] == 0


def test_deleting_a_chain_leaves_its_routes_without_one_and_removes_its_policies(client, make_integration):
    integration = make_integration("webhook", name="Paged")
    chain = make_chain(client, "Primary")
    kept = make_chain(client, "Kept")
    policy = make_policy(client, chain, type="resolve")
    route = client.post(
        "/api/v1/routes/",
        json={"integration_id": integration["id"], "routing_regex": "x", "escalation_chain_id": chain["id"]},
    ).get_json()
    other = client.post(
        "/api/v1/routes/",
        json={"integration_id": integration["id"], "routing_regex": "y", "escalation_chain_id": kept["id"]},
    ).get_json()
    default_id = integration["default_route"]["id"]
    client.put(f"/api/v1/routes/{default_id}/", json={"escalation_chain_id": chain["id"]})

    assert client.delete(f"/api/v1/escalation_chains/{chain['id']}/").status_code == 204
    assert client.get(f"/api/v1/routes/{route['id']}/").get_json()["escalation_chain_id"] is None
    assert client.get(f"/api/v1/routes/{default_id}/").get_json()["escalation_chain_id"] is None
    assert client.get(f"/api/v1/routes/{other['id']}/").get_json()["escalation_chain_id"] == kept["id"]
    assert client.get(f"/api/v1/escalation_policies/{policy['id']}/").status_code == 404
    assert client.get("/api/v1/escalation_policies/").get_json()["count"] == 0
    # The route's own history says so: changing it again keeps it without a chain.
    changed = client.patch(f"/api/v1/routes/{route['id']}/", json={"routing_regex": "z"}).get_json()
    assert (changed["routing_regex"], changed["escalation_chain_id"]) == ("z", None)
    response = client.post("/api/v1/escalation_policies/", json={"escalation_chain_id": chain["id"], "type": "resolve"})
    assert (response.status_code, response.get_json()) == (
        400, {"escalation_chain_id": [f'Invalid pk "{chain["id"]}" - object does not exist.']},
    )  # fmt: skip


# --- policies -------------------------------------------------------------------------------------


def test_each_step_type_shows_its_own_parameters(client):
    alice = make_user(client, "alice")
    bob = make_user(client, "bob")
    team = make_team(client, "SRE")
    schedule = make_schedule(client, "Primary")
    webhook = client.post("/api/v1/webhooks/", json={"name": "Tickets", "url": "https://tickets.example.com/",
                                                     "http_method": "POST", "trigger_type": "escalation"}).get_json()
    chain = make_chain(client, "Everything")
    cases = [
        ({"type": "wait", "duration": 300}, {"duration": 300}),
        ({"type": "wait"}, {"duration": None}),
        ({"type": "notify_persons", "persons_to_notify": [alice["id"], bob["id"], alice["id"]], "important": True},
         {"persons_to_notify": [alice["id"], bob["id"]], "important": True}),
        ({"type": "notify_person_next_each_time", "persons_to_notify_next_each_time": [bob["id"]]},
         {"persons_to_notify_next_each_time": [bob["id"]], "important": False}),
        ({"type": "notify_team_members", "team_to_notify": team["id"], "important": True},
         {"team_to_notify": team["id"], "important": True}),
        ({"type": "notify_on_call_from_schedule", "notify_on_call_from_schedule": schedule["id"]},
         {"notify_on_call_from_schedule": schedule["id"], "important": False}),
        ({"type": "trigger_webhook", "action_to_trigger": webhook["id"]}, {"action_to_trigger": webhook["id"]}),
        ({"type": "resolve", "important": True, "duration": 300}, {}),
        ({"type": "repeat_escalation"}, {}),
        ({"type": "notify_if_time_from_to", "notify_if_time_from": "09:00:00Z", "notify_if_time_to": "18:30:00Z"},
         {"notify_if_time_from": "09:00:00Z", "notify_if_time_to": "18:30:00Z"}),
        ({"type": "notify_if_num_alerts_in_window", "num_alerts_in_window": 3, "num_minutes_in_window": 10},
         {"num_alerts_in_window": 3, "num_minutes_in_window": 10}),
    ]  # fmt: skip
    for position, (body, fields) in enumerate(cases):
        policy = make_policy(client, chain, **body)
        expected = {"id": policy["id"], "escalation_chain_id": chain["id"], "position": position, "type": body["type"]}
        assert policy == {**expected, **fields}, body
        assert client.get(f"/api/v1/escalation_policies/{policy['id']}/").get_json() == policy
    assert [p["type"] for p in policies_of(client, chain)] == [body["type"] for body, _ in cases]


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, {"type": ["This field is required."]}),
        ({"type": "page_everyone"}, {"detail": "Invalid escalation step type"}),
        ({"type": "declare_incident"}, {"detail": "Invalid escalation step type"}),
        ({"type": "notify_whole_channel"}, {"detail": "Invalid escalation step type: step is Slack-specific"}),
        ({"type": "notify_user_group"}, {"detail": "Invalid escalation step type: step is Slack-specific"}),
        ({"type": "wait", "duration": 59}, {"duration": ["Ensure this value is greater than or equal to 60."]}),
        ({"type": "wait", "duration": 86401}, {"duration": ["Ensure this value is less than or equal to 86400."]}),
        ({"type": "wait", "duration": 10**400}, {"duration": ["Ensure this value is less than or equal to 86400."]}),
        ({"type": "wait", "duration": "5m"}, {"duration": ["A valid integer is required."]}),
        ({"type": "wait", "duration": True}, {"duration": ["A valid integer is required."]}),
        ({"type": "wait", "duration": 300.5}, {"duration": ["A valid integer is required."]}),
        ({"type": "notify_persons", "persons_to_notify": ["U111111111111"]},
         {"persons_to_notify": ['Invalid pk "U111111111111" - object does not exist.']}),
        ({"type": "notify_persons", "persons_to_notify": "U111111111111"}, {"persons_to_notify": ["Not a valid list."]}),
        ({"type": "notify_persons", "persons_to_notify": ["U1"] * 101},
         {"persons_to_notify": ["Ensure this field has no more than 100 elements."]}),
        ({"type": "notify_person_next_each_time", "persons_to_notify_next_each_time": ["U111111111111"]},
         {"persons_to_notify_next_each_time": ['Invalid pk "U111111111111" - object does not exist.']}),
        ({"type": "notify_team_members", "team_to_notify": "T111111111111"},
         {"team_to_notify": ['Invalid pk "T111111111111" - object does not exist.']}),
        ({"type": "notify_on_call_from_schedule", "notify_on_call_from_schedule": "S111111111111"},
         {"notify_on_call_from_schedule": ['Invalid pk "S111111111111" - object does not exist.']}),
        ({"type": "trigger_webhook", "action_to_trigger": "../../etc"}, {"action_to_trigger": ["Enter a valid webhook id."]}),
        ({"type": "trigger_webhook", "action_to_trigger": "WH1234ABCD"},
         {"action_to_trigger": ['Invalid pk "WH1234ABCD" - object does not exist.']}),
        ({"type": "notify_if_time_from_to", "notify_if_time_from": "9:00"},
         {"detail": "Invalid time format, should be '00:00:00Z'"}),
        ({"type": "notify_if_time_from_to", "notify_if_time_to": "24:00:00Z"},
         {"detail": "Invalid time format, should be '00:00:00Z'"}),
        ({"type": "notify_if_num_alerts_in_window", "num_alerts_in_window": 0},
         {"num_alerts_in_window": ["Ensure this value is greater than or equal to 1."]}),
        ({"type": "notify_if_num_alerts_in_window", "num_minutes_in_window": 2**31},
         {"num_minutes_in_window": ["Ensure this value is less than or equal to 2147483647."]}),
        ({"type": "resolve", "position": "last"}, {"position": ["A valid integer is required."]}),
        ({"type": "re\x00solve"}, {"type": ["Null characters are not allowed."]}),
        ({"type": "resolve", "escalation_chain_id": "F111111111111"},
         {"escalation_chain_id": ['Invalid pk "F111111111111" - object does not exist.']}),
    ],
)  # fmt: skip
def test_invalid_policies_are_refused_with_oncalls_texts(client, body, expected):
    chain = make_chain(client, "Checked")
    response = client.post("/api/v1/escalation_policies/", json={"escalation_chain_id": chain["id"], **body})
    assert (response.status_code, response.get_json()) == (400, expected)
    assert policies_of(client, chain) == []


def test_hostile_policy_bodies_get_a_400(client):
    deep = "{" + '"a":{' * 50_000 + "}" * 50_001
    for body in (deep, "[1, 2]", "null"):
        response = client.post("/api/v1/escalation_policies/", data=body, content_type="application/json")
        assert (response.status_code, response.get_json()) == (400, {"detail": "A JSON object is expected."})


def test_policies_keep_their_order_within_their_chain(client):
    first_chain = make_chain(client, "First")
    second_chain = make_chain(client, "Second")
    resolve = make_policy(client, first_chain, type="resolve")
    wait = make_policy(client, first_chain, type="wait", duration=60, position=0)
    repeat = make_policy(client, first_chain, type="repeat_escalation", position=-1)
    other = make_policy(client, second_chain, type="wait", duration=120)
    make_policy(client, first_chain, type="wait", duration=900, position=10**20)

    def order(chain):
        return [(p["type"], p["position"]) for p in policies_of(client, chain)]

    assert order(first_chain) == [("wait", 0), ("resolve", 1), ("repeat_escalation", 2), ("wait", 3)]
    moved = client.patch(f"/api/v1/escalation_policies/{repeat['id']}/", json={"position": 0})
    assert moved.status_code == 200 and moved.get_json()["position"] == 0
    assert order(first_chain) == [("repeat_escalation", 0), ("wait", 1), ("resolve", 2), ("wait", 3)]
    assert client.patch(f"/api/v1/escalation_policies/{wait['id']}/", json={"position": -1}).get_json()["position"] == 3
    assert client.delete(f"/api/v1/escalation_policies/{resolve['id']}/").status_code == 204
    assert client.get(f"/api/v1/escalation_policies/{resolve['id']}/").status_code == 404
    assert order(first_chain) == [("repeat_escalation", 0), ("wait", 1), ("wait", 2)]
    # A policy stays in its chain; all policies list by chain, then position.
    stayed = client.put(f"/api/v1/escalation_policies/{other['id']}/", json={"escalation_chain_id": first_chain["id"]})
    assert stayed.get_json()["escalation_chain_id"] == second_chain["id"]
    everything = client.get("/api/v1/escalation_policies/").get_json()["results"]
    assert [(p["escalation_chain_id"], p["position"]) for p in everything] == [
        (first_chain["id"], 0), (first_chain["id"], 1), (first_chain["id"], 2), (second_chain["id"], 0),
    ]  # fmt: skip


def test_changing_the_type_drops_the_old_parameters(client):
    alice = make_user(client, "alice")
    chain = make_chain(client, "Changes")
    policy = make_policy(client, chain, type="notify_persons", persons_to_notify=[alice["id"]], important=True)
    same_type = client.patch(f"/api/v1/escalation_policies/{policy['id']}/", json={"important": False}).get_json()
    assert (same_type["persons_to_notify"], same_type["important"]) == ([alice["id"]], False)
    waiting = client.put(f"/api/v1/escalation_policies/{policy['id']}/", json={"type": "wait", "duration": 900})
    assert waiting.get_json() == {
        "id": policy["id"], "escalation_chain_id": chain["id"], "position": 0, "type": "wait", "duration": 900,
    }  # fmt: skip
    back = client.patch(f"/api/v1/escalation_policies/{policy['id']}/", json={"type": "notify_persons"}).get_json()
    assert (back["persons_to_notify"], back["important"]) == ([], False)
    refused = client.patch(f"/api/v1/escalation_policies/{policy['id']}/", json={"type": "notify_whole_channel"})
    assert (refused.status_code, refused.get_json()) == (
        400, {"detail": "Invalid escalation step type: step is Slack-specific"},
    )  # fmt: skip


def test_viewers_and_editors_read_chains_and_policies_but_cannot_change_them(app, runtime, client):
    chain = make_chain(client, "Guarded")
    policy = make_policy(client, chain, type="resolve")
    for role in ("viewer", "editor"):
        caller = app.test_client()
        caller.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, role, role)
        assert caller.get(f"/api/v1/escalation_chains/{chain['id']}/").status_code == 200
        assert caller.get(f"/api/v1/escalation_policies/{policy['id']}/").status_code == 200
        for method, path, body in (
            ("post", "/api/v1/escalation_chains/", {"name": "Mine"}),
            ("patch", f"/api/v1/escalation_chains/{chain['id']}/", {"name": "Mine"}),
            ("delete", f"/api/v1/escalation_chains/{chain['id']}/", None),
            ("post", "/api/v1/escalation_policies/", {"escalation_chain_id": chain["id"], "type": "resolve"}),
            ("put", f"/api/v1/escalation_policies/{policy['id']}/", {"type": "wait"}),
            ("delete", f"/api/v1/escalation_policies/{policy['id']}/", None),
        ):
            response = getattr(caller, method)(path, json=body)
            assert (response.status_code, response.get_json()) == FORBIDDEN, (role, method, path)
    assert client.get(f"/api/v1/escalation_chains/{chain['id']}/").get_json()["name"] == "Guarded"
    assert [p["type"] for p in policies_of(client, chain)] == ["resolve"]
