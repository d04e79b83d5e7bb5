"""Routes, through the API in OnCall's shapes and at ingest, on both backends: every integration's
default route comes last and stays; the first route that matches an alert is recorded in its group
and is part of its grouping; slow routes are bounded; a replay rebuilds the read model exactly."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import eventually
from tests.integration.conftest import groups_of, inbound_path, wait_for_groups
from tests.integration.test_template_bounds import SORT_BOMB, STOPPED, timeline_of
from tests.integration.test_users_and_teams import make_team, make_user
from tocsin.cli import create_token

ROUTE_FIELDS = {
    "id", "integration_id", "escalation_chain_id", "routing_type", "routing_regex", "position",
    "is_the_last_route", "slack", "telegram",
}  # fmt: skip
FORBIDDEN = (403, {"detail": "You do not have permission to perform this action."})
KEYED = {"grouping_key": "{{ payload.key }}"}  # one group per key: groupings the tests can name


def make_route(client, integration: dict, routing_regex: str, **fields) -> dict:
    response = client.post(
        "/api/v1/routes/", json={"integration_id": integration["id"], "routing_regex": routing_regex, **fields}
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def routes_of(client, integration: dict) -> list[dict]:
    response = client.get(f"/api/v1/routes/?integration_id={integration['id']}")
    assert response.status_code == 200
    return response.get_json()["results"]


def order_of(client, integration: dict) -> list[tuple[str, int, bool]]:
    return [(r["routing_regex"], r["position"], r["is_the_last_route"]) for r in routes_of(client, integration)]


def post(client, integration: dict, payload: dict) -> None:
    response = client.post(inbound_path(integration), json=payload)
    assert response.status_code == 200, response.get_data(as_text=True)


def group_with_key(client, integration: dict, alerts: int, route_id: str) -> dict:
    """Wait for a group of ``integration`` on ``route_id`` with ``alerts`` alerts."""

    def check():
        return next(
            (g for g in groups_of(client, integration["id"]) if g["route_id"] == route_id and g["alerts_count"] == alerts),
            None,
        )

    return eventually(check, describe=f"a group with {alerts} alert(s) on route {route_id}")


# --- the API --------------------------------------------------------------------------------------


def test_every_integration_has_its_default_route_in_oncalls_shape(client, make_integration):
    integration = make_integration("webhook", name="Hooks")
    (route,) = routes_of(client, integration)
    assert set(route) == ROUTE_FIELDS
    assert route == {
        "id": integration["default_route"]["id"],
        "integration_id": integration["id"],
        "escalation_chain_id": None,
        "routing_type": "regex",
        "routing_regex": None,
        "position": 0,
        "is_the_last_route": True,
        "slack": {"channel_id": None, "enabled": False},
        "telegram": {"id": None, "enabled": False},
    }
    assert client.get(f"/api/v1/routes/{route['id']}/").get_json() == route
    assert client.get("/api/v1/routes/R111111111111/").status_code == 404


def test_routes_keep_their_order_and_the_default_route_stays_last(client, make_integration):
    integration = make_integration("webhook", name="Ordered")
    other = make_integration("webhook", name="Other")
    first = make_route(client, integration, "first")
    assert (first["position"], first["is_the_last_route"], first["routing_type"]) == (0, False, "regex")
    make_route(client, integration, "ahead", position=0)
    make_route(client, integration, "end", position=-1)
    make_route(client, integration, "far", position=10**30)  # past the end: last before the default
    make_route(client, other, "elsewhere")
    assert order_of(client, integration) == [
        ("ahead", 0, False), ("first", 1, False), ("end", 2, False), ("far", 3, False), (None, 4, True),
    ]  # fmt: skip

    end = next(r for r in routes_of(client, integration) if r["routing_regex"] == "end")
    moved = client.patch(f"/api/v1/routes/{end['id']}/", json={"position": 0})
    assert moved.status_code == 200 and moved.get_json()["position"] == 0
    default_id = integration["default_route"]["id"]
    assert client.put(f"/api/v1/routes/{default_id}/", json={"position": 0}).get_json()["position"] == 4
    assert order_of(client, integration) == [
        ("end", 0, False), ("ahead", 1, False), ("first", 2, False), ("far", 3, False), (None, 4, True),
    ]  # fmt: skip

    assert client.delete(f"/api/v1/routes/{first['id']}/").status_code == 204
    assert client.get(f"/api/v1/routes/{first['id']}/").status_code == 404
    assert order_of(client, integration) == [("end", 0, False), ("ahead", 1, False), ("far", 2, False), (None, 3, True)]

    # All routes: each integration's in order, default last; 25 a page (OnCall's), exact filters.
    everything = client.get("/api/v1/routes/").get_json()
    assert (everything["count"], everything["page_size"]) == (6, 25)
    assert [r["routing_regex"] for r in everything["results"]] == ["end", "ahead", "far", None, "elsewhere", None]
    page = client.get("/api/v1/routes/?perpage=2&page=2").get_json()
    assert [r["routing_regex"] for r in page["results"]] == ["far", None] and page["total_pages"] == 3
    assert [r["routing_regex"] for r in client.get("/api/v1/routes/?routing_regex=far").get_json()["results"]] == ["far"]


def test_the_default_route_cannot_be_deleted_nor_given_a_term(client, make_integration):
    integration = make_integration("webhook", name="Defaults")
    default_id = integration["default_route"]["id"]
    response = client.delete(f"/api/v1/routes/{default_id}/")
    assert (response.status_code, response.get_json()) == (400, {"detail": "Unable to delete default filter"})
    response = client.patch(f"/api/v1/routes/{default_id}/", json={"routing_regex": "x"})
    assert (response.status_code, response.get_json()) == (
        400, {"detail": "Filtering term of default route cannot be changed"},
    )  # fmt: skip
    assert routes_of(client, integration)[0]["routing_regex"] is None


def test_a_route_changes_its_term_and_type(client, make_integration):
    integration = make_integration("webhook", name="Changes")
    route = make_route(client, integration, "disk")
    changed = client.put(f"/api/v1/routes/{route['id']}/", json={"routing_type": "jinja2", "routing_regex": "{{ true }}"})
    assert changed.status_code == 200
    assert (changed.get_json()["routing_type"], changed.get_json()["routing_regex"]) == ("jinja2", "{{ true }}")
    # The type alone changes too, checked against the kept term.
    response = client.patch(f"/api/v1/routes/{route['id']}/", json={"routing_type": "regex", "routing_regex": "("})
    assert (response.status_code, response.get_json()) == (400, {"detail": "Regular expression is incorrect"})
    assert client.get(f"/api/v1/routes/{route['id']}/").get_json()["routing_type"] == "jinja2"


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, {"routing_regex": ["This field is required."]}),
        ({"routing_regex": "(unclosed"}, {"detail": "Regular expression is incorrect"}),
        ({"routing_regex": "{{ payload.x", "routing_type": "jinja2"}, {"non_field_errors": ["Jinja template is incorrect"]}),
        ({"routing_regex": "{{ 1 | nosuchfilter }}", "routing_type": "jinja2"},
         {"non_field_errors": ["Jinja template is incorrect"]}),
        ({"routing_regex": "x", "routing_type": "labels"}, {"non_field_errors": ["Expression type is incorrect"]}),
        ({"routing_regex": "x", "routing_type": "glob"}, {"routing_type": ['"glob" is not a valid choice.']}),
        ({"routing_regex": "x" * 1025}, {"routing_regex": ["Ensure this field has no more than 1024 characters."]}),
        ({"routing_regex": "a\x00b"}, {"routing_regex": ["Null characters are not allowed."]}),
        ({"routing_regex": None}, {"routing_regex": ["This field may not be null."]}),
        ({"routing_regex": "x", "position": "first"}, {"position": ["A valid integer is required."]}),
        ({"routing_regex": "x", "position": True}, {"position": ["A valid integer is required."]}),
        ({"routing_regex": "x", "escalation_chain_id": "F111111111111"},
         {"escalation_chain_id": ['Invalid pk "F111111111111" - object does not exist.']}),
        ({"routing_regex": ["x"]}, {"routing_regex": ["Not a valid string."]}),
    ],
)  # fmt: skip
def test_invalid_routes_are_refused_with_oncalls_texts(client, make_integration, body, expected):
    integration = make_integration("webhook", name="Invalid")
    response = client.post("/api/v1/routes/", json={"integration_id": integration["id"], **body})
    assert (response.status_code, response.get_json()) == (400, expected)
    assert len(routes_of(client, integration)) == 1


def test_hostile_route_bodies_get_a_400(client, make_integration):
    integration = make_integration("webhook", name="Hostile")
    unknown = client.post("/api/v1/routes/", json={"integration_id": "C111111111111", "routing_regex": "x"})
    assert (unknown.status_code, unknown.get_json()) == (
        400, {"integration_id": ['Invalid pk "C111111111111" - object does not exist.']},
    )  # fmt: skip
    deep = "[" * 100_000 + "]" * 100_000
    for body in (deep, '"just a string"', "[]", "{not json"):
        response = client.post("/api/v1/routes/", data=body, content_type="application/json")
        assert (response.status_code, response.get_json()) == (400, {"detail": "A JSON object is expected."}), body[:20]
    # A regex that takes for ever on its own is still a valid regex: accepted, and bounded at ingest.
    assert make_route(client, integration, "(a+)+$")["routing_regex"] == "(a+)+$"
    assert len(routes_of(client, integration)) == 2


def test_viewers_and_editors_read_routes_but_cannot_change_them(app, runtime, client, make_integration):
    integration = make_integration("webhook", name="Roles")
    route = make_route(client, integration, "x")
    for role in ("viewer", "editor"):
        caller = app.test_client()
        caller.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, role, role)
        assert caller.get(f"/api/v1/routes/{route['id']}/").status_code == 200
        response = caller.post("/api/v1/routes/", json={"integration_id": integration["id"], "routing_regex": "y"})
        assert (response.status_code, response.get_json()) == FORBIDDEN, role
        response = caller.patch(f"/api/v1/routes/{route['id']}/", json={"routing_regex": "y"})
        assert (response.status_code, response.get_json()) == FORBIDDEN, role
        response = caller.delete(f"/api/v1/routes/{route['id']}/")
        assert (response.status_code, response.get_json()) == FORBIDDEN, role
    assert [r["routing_regex"] for r in routes_of(client, integration)] == ["x", None]


def test_a_deleted_integrations_routes_are_gone(client, make_integration):
    integration = make_integration("webhook", name="Gone")
    route = make_route(client, integration, "x")
    assert client.delete(f"/api/v1/integrations/{integration['id']}/").status_code == 204
    assert client.get(f"/api/v1/routes/{route['id']}/").status_code == 404
    assert routes_of(client, integration) == []


# --- routing at ingest ----------------------------------------------------------------------------


def test_regex_and_jinja2_routes_choose_the_route_recorded_in_the_group(client, make_integration):
    integration = make_integration("webhook", name="Routed", templates=KEYED)
    # Matched against the payload as Python's json.dumps writes it: ", " and ": ", ASCII escapes.
    critical = make_route(client, integration, r'"severity": "critical"')
    database = make_route(client, integration, '{{ payload.team == "db" }}', routing_type="jinja2")
    accented = make_route(client, integration, r"caf\\u00e9")
    default_id = integration["default_route"]["id"]

    post(client, integration, {"key": "a", "severity": "critical", "team": "db"})  # the first match wins
    post(client, integration, {"key": "b", "team": "db"})
    post(client, integration, {"key": "c", "place": "café"})
    post(client, integration, {"key": "d", "severity": "warning"})
    groups = wait_for_groups(client, integration["id"], 4)
    routes = {alert_key(client, group): group["route_id"] for group in groups}
    assert routes == {"a": critical["id"], "b": database["id"], "c": accented["id"], "d": default_id}
    filtered = client.get(f"/api/v1/alert_groups/?route_id={database['id']}").get_json()["results"]
    assert [alert_key(client, g) for g in filtered] == ["b"]


def alert_key(client, group: dict) -> str:
    (alert,) = client.get(f"/api/v1/alerts/?alert_group_id={group['id']}").get_json()["results"]
    return alert["payload"]["key"]


def test_a_new_route_keeps_existing_groups_and_opens_its_own(client, make_integration):
    integration = make_integration("webhook", name="Regrouped", templates=KEYED)
    default_id = integration["default_route"]["id"]
    post(client, integration, {"key": "disk", "host": "db-1"})
    first = group_with_key(client, integration, 1, default_id)

    route = make_route(client, integration, "db-1")
    post(client, integration, {"key": "disk", "host": "db-1"})  # same grouping key, another route
    routed = group_with_key(client, integration, 1, route["id"])
    assert routed["id"] != first["id"]
    post(client, integration, {"key": "disk", "host": "db-2"})  # not matching: joins the first group
    group_with_key(client, integration, 2, default_id)

    # Removing the route changes no group: the next matching alert joins the default route's.
    assert client.delete(f"/api/v1/routes/{route['id']}/").status_code == 204
    post(client, integration, {"key": "disk", "host": "db-1"})
    group_with_key(client, integration, 3, default_id)
    again = client.get(f"/api/v1/alert_groups/{routed['id']}/").get_json()
    assert (again["route_id"], again["alerts_count"]) == (route["id"], 1)


def test_a_slow_routing_template_or_regex_is_bounded_and_others_go_on(client, make_integration):
    slow = make_integration("webhook", name="Slow routes")
    loop = "{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}{% endfor %}true"
    make_route(client, slow, loop, routing_type="jinja2")
    make_route(client, slow, "(a+)+$")
    other = make_integration("webhook", name="Quick")
    started = time.monotonic()
    post(client, slow, {"text": "a" * 40 + "!"})
    post(client, other, {"text": "hello"})
    wait_for_groups(client, other["id"], 1)
    # Each route gets the render budget (1 s): both fail to match, so the default route.
    (group,) = wait_for_groups(client, slow["id"], 1)
    elapsed = time.monotonic() - started
    assert group["route_id"] == slow["default_route"]["id"]
    assert elapsed < 8.0, f"the slow routes held ingest for {elapsed:.1f}s"


def test_a_routing_template_past_the_hard_limit_is_stopped_and_recorded(client, make_integration):
    bomb = make_integration("webhook", name="Route bomb")
    make_route(client, bomb, SORT_BOMB, routing_type="jinja2")
    post(client, bomb, {"n": 1})
    (group,) = wait_for_groups(client, bomb["id"], 1)
    assert group["route_id"] == bomb["default_route"]["id"]
    entries = eventually(lambda: [e for e in timeline_of(client, group["id"]) if e["type"] == 100], describe="errors")
    assert STOPPED.match(entries[0]["details"]["template_errors"]["grouping_key"])


def test_an_escalation_chain_on_a_route_and_on_the_default_route(client, make_integration):
    integration = make_integration("webhook", name="Chained")
    chain = client.post("/api/v1/escalation_chains/", json={"name": "Primary"}).get_json()
    route = make_route(client, integration, "x", escalation_chain_id=chain["id"])
    assert route["escalation_chain_id"] == chain["id"]
    default_id = integration["default_route"]["id"]
    response = client.put(f"/api/v1/routes/{default_id}/", json={"escalation_chain_id": chain["id"]})
    assert response.status_code == 200 and response.get_json()["escalation_chain_id"] == chain["id"]
    # The integration shows its default route's chain too.
    shown = client.get(f"/api/v1/integrations/{integration['id']}/").get_json()
    assert shown["default_route"]["escalation_chain_id"] == chain["id"]
    cleared = client.patch(f"/api/v1/routes/{route['id']}/", json={"escalation_chain_id": None})
    assert cleared.get_json()["escalation_chain_id"] is None
    unknown = client.patch(f"/api/v1/routes/{route['id']}/", json={"escalation_chain_id": "F111111111111"})
    assert (unknown.status_code, unknown.get_json()) == (
        400, {"escalation_chain_id": ['Invalid pk "F111111111111" - object does not exist.']},
    )  # fmt: skip


# --- replay and the document ----------------------------------------------------------------------

READ_MODELS = ("routes", "escalation_chains", "escalation_policies")


def snapshot(runtime) -> dict[str, list]:
    return {
        table: sorted(json.dumps(row, sort_keys=True, default=str) for row in runtime.db.query(f"SELECT * FROM {table}"))
        for table in READ_MODELS
    }


def test_replay_rebuilds_routes_chains_and_policies_exactly(runtime, client, make_integration, tocsin):
    team = make_team(client, "SRE")
    alice = make_user(client, "alice", teams=[team["id"]])
    kept = make_integration("webhook", name="Kept")
    gone = make_integration("webhook", name="Gone")
    chain = client.post("/api/v1/escalation_chains/", json={"name": "Primary", "team_id": team["id"]}).get_json()
    spare = client.post("/api/v1/escalation_chains/", json={"name": "Spare"}).get_json()
    first = make_route(client, kept, "a", escalation_chain_id=chain["id"])
    make_route(client, kept, "b", position=0, escalation_chain_id=spare["id"])
    make_route(client, kept, "{{ true }}", routing_type="jinja2")
    make_route(client, gone, "c")
    client.patch(f"/api/v1/routes/{first['id']}/", json={"position": 0, "routing_regex": "a+"})
    client.put(f"/api/v1/routes/{kept['default_route']['id']}/", json={"escalation_chain_id": spare["id"]})
    client.delete(f"/api/v1/integrations/{gone['id']}/")
    for body in (
        {"type": "notify_persons", "persons_to_notify": [alice["id"]], "important": True},
        {"type": "wait", "duration": 300, "position": 0},
        {"type": "notify_team_members", "team_to_notify": team["id"]},
        {"type": "repeat_escalation"},
    ):
        assert client.post("/api/v1/escalation_policies/", json={"escalation_chain_id": chain["id"], **body}).status_code == 201
    policies = client.get(f"/api/v1/escalation_policies/?escalation_chain_id={chain['id']}").get_json()["results"]
    client.patch(f"/api/v1/escalation_policies/{policies[3]['id']}/", json={"position": 1})
    client.delete(f"/api/v1/escalation_policies/{policies[2]['id']}/")
    client.delete(f"/api/v1/escalation_chains/{spare['id']}/")
    runtime.catch_up()
    live = snapshot(runtime)
    assert len(live["routes"]) == 4 and len(live["escalation_chains"]) == 2 and len(live["escalation_policies"]) == 3

    code, out, _ = tocsin("replay")
    assert code == 0 and "routes" in out and "escalation_chains" in out
    assert snapshot(runtime) == live
    for batch_size in (1, 10_000):
        runtime.runners["config"].batch_size = batch_size
        runtime.rebuild_read_models()
        assert snapshot(runtime) == live, f"batch size {batch_size}"


def test_the_openapi_document_describes_routes_chains_and_policies(client):
    import openapi_spec_validator as validator

    document = client.get("/api/v1/openapi.json").get_json()
    validator.validate(document)
    for plural in ("routes", "escalation_chains", "escalation_policies"):
        assert set(document["paths"][f"/api/v1/{plural}/"]) == {"get", "post"}
        assert {"get", "put", "patch", "delete"} <= set(document["paths"][f"/api/v1/{plural}/{{id}}/"])
    assert set(document["components"]["schemas"]["Route"]["properties"]) == ROUTE_FIELDS
