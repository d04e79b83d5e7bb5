"""Escalations running on both backends: an alert group's chain runs step by step, each step on
its timeline in OnCall's words; acknowledge, resolve and silence stop it and their undoing
restarts it; the chain is frozen when escalation starts; people are resolved when a step runs;
direct paging; and the whole timeline is rebuilt identically by a replay.

Wait steps are minutes long (the API takes 60 s at least): the tests move the ticker's clock on
instead of sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import eventually
from tests.integration.conftest import send, wait_for_groups
from tests.integration.test_escalation_chains import make_chain, make_policy
from tests.integration.test_users_and_teams import make_team, make_user


class Clock:
    """The ticker's clock, moved on by the test."""

    def __init__(self):
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(runtime) -> Clock:
    clock = Clock()
    runtime.ticker.clock = clock
    return clock


@pytest.fixture
def people(client) -> dict[str, dict]:
    team = make_team(client, "SRE")
    return {
        "alice": make_user(client, "alice", role="editor", email="alice@example.org", teams=[team["id"]]),
        "bob": make_user(client, "bob", role="admin", email="bob@example.org", teams=[team["id"]]),
        "carol": make_user(client, "carol", role="viewer", email="carol@example.org", teams=[team["id"]]),
        "team": team,
    }


def chain_with(client, name: str, *steps: dict) -> dict:
    chain = make_chain(client, name)
    for step in steps:
        make_policy(client, chain, **step)
    return chain


def routed_integration(client, make_integration, chain: dict | None) -> dict:
    integration = make_integration("formatted_webhook")
    routes = client.get(f"/api/v1/routes/?integration_id={integration['id']}").get_json()["results"]
    response = client.put(f"/api/v1/routes/{routes[-1]['id']}/", json={"escalation_chain_id": chain and chain["id"]})
    assert response.status_code == 200, response.get_json()
    return integration


def actions(client, group_id: str, leave_out: tuple[int, ...] = ()) -> list[str]:
    """The timeline's entries' texts, but those of the types ``leave_out``."""
    response = client.get(f"/api/v1/alert_groups/{group_id}/timeline/")
    assert response.status_code == 200
    return [entry["action"] for entry in response.get_json()["results"] if entry["type"] not in leave_out]


def escalation_actions(client, group_id: str) -> list[str]:
    """Without the group's registration and the notifications' deliveries (their own tests')."""
    return actions(client, group_id, leave_out=(21, 22, 104, 105, 106))


def wait_for_actions(client, group_id: str, expected: list[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (have := escalation_actions(client, group_id)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert have == expected


def fire(client, integration: dict, title: str = "disk full") -> str:
    """Send an alert that opens a group; the group's id."""
    send(client, integration, {"title": title, "alert_uid": title})
    return eventually(lambda: next((g["id"] for g in _groups(client, integration) if g["title"] == title), None),
                      describe=f"the group of {title!r}")  # fmt: skip


def _groups(client, integration):
    return client.get(f"/api/v1/alert_groups/?integration_id={integration['id']}").get_json()["results"]


NOTIFY_ALICE = 'triggered step "Notify multiple Users": alice'
STARTED = 'escalation started with chain "Primary"'


def test_chain_runs_step_by_step_and_acknowledge_stops_it(client, make_integration, people, clock):
    chain = chain_with(
        client, "Primary",
        {"type": "notify_persons", "persons_to_notify": [people["alice"]["id"]]},
        {"type": "wait", "duration": 300},
        {"type": "notify_persons", "persons_to_notify": [people["bob"]["id"], people["carol"]["id"]], "important": True},
        {"type": "wait", "duration": 300},
        {"type": "notify_persons", "persons_to_notify": [people["alice"]["id"]]},
    )  # fmt: skip
    integration = routed_integration(client, make_integration, chain)
    group_id = fire(client, integration)
    first = [STARTED, NOTIFY_ALICE, 'triggered step "Wait" (5 minutes)']
    wait_for_actions(client, group_id, first)

    clock.advance(301)  # carol is a viewer: viewers are never notified
    second = [*first, 'triggered step "Notify multiple Users (Important)": bob', 'triggered step "Wait" (5 minutes)']
    wait_for_actions(client, group_id, second)

    assert client.post(f"/api/v1/alert_groups/{group_id}/acknowledge").status_code == 200
    stopped = [*second, "Acknowledged by admin", "escalation stopped because alert group was acknowledged"]
    wait_for_actions(client, group_id, stopped)
    clock.advance(301)
    time.sleep(2.5)  # the third step's deadline has passed and the ticker ticked twice: nothing ran
    assert escalation_actions(client, group_id) == stopped

    entries = client.get(f"/api/v1/alert_groups/{group_id}/timeline/").get_json()["results"]
    notified = [e for e in entries if e["action"].startswith('triggered step "Notify')]
    assert [e["type"] for e in notified] == [5, 5]  # OnCall's "escalation triggered"


def test_unacknowledge_restarts_from_the_first_step_and_the_chain_is_frozen_at_start(
    client, make_integration, people, clock
):
    chain = chain_with(client, "Primary", {"type": "notify_persons", "persons_to_notify": [people["alice"]["id"]]})
    integration = routed_integration(client, make_integration, chain)
    group_id = fire(client, integration)
    wait_for_actions(client, group_id, [STARTED, NOTIFY_ALICE, "escalation finished"])

    # Editing the chain changes only escalations that start later.
    make_policy(client, chain, type="notify_persons", persons_to_notify=[people["bob"]["id"]])
    assert client.post(f"/api/v1/alert_groups/{group_id}/acknowledge").status_code == 200
    assert client.post(f"/api/v1/alert_groups/{group_id}/unacknowledge").status_code == 200
    before_restart = [STARTED, NOTIFY_ALICE, "escalation finished", "Acknowledged by admin", "Unacknowledged by admin",
                      'escalation restarted with chain "Primary" because alert group was unacknowledged']  # fmt: skip
    wait_for_actions(client, group_id, before_restart)
    clock.advance(11)  # OnCall's 10 s before a restarted escalation's first step
    restarted = [*before_restart, NOTIFY_ALICE, 'triggered step "Notify multiple Users": bob', "escalation finished"]
    wait_for_actions(client, group_id, restarted)


def test_repeat_escalation_goes_back_at_most_five_times(client, make_integration, people, clock):
    chain = chain_with(
        client, "Primary",
        {"type": "notify_persons", "persons_to_notify": [people["alice"]["id"]]},
        {"type": "repeat_escalation"},
    )  # fmt: skip
    integration = routed_integration(client, make_integration, chain)
    group_id = fire(client, integration)
    expected = [STARTED, NOTIFY_ALICE, "escalation started from the beginning"]
    wait_for_actions(client, group_id, expected)
    for _ in range(4):
        clock.advance(6)
        expected += [NOTIFY_ALICE, "escalation started from the beginning"]
        wait_for_actions(client, group_id, expected)
    clock.advance(6)
    wait_for_actions(client, group_id, [*expected, NOTIFY_ALICE, "escalation finished"])
    assert escalation_actions(client, group_id).count(NOTIFY_ALICE) == 6


def test_resolve_step_resolves_the_group_and_silence_stops_until_it_ends(client, make_integration, people, clock):
    resolving = chain_with(client, "Primary", {"type": "resolve"})
    integration = routed_integration(client, make_integration, resolving)
    group_id = fire(client, integration)
    wait_for_actions(client, group_id, [STARTED, 'triggered step "Resolve"',
                                        "escalation stopped because alert group was resolved",
                                        "Resolved automatically"])  # fmt: skip
    assert client.get(f"/api/v1/alert_groups/{group_id}/").get_json()["state"] == "resolved"
    send(client, integration, {"title": "disk full", "alert_uid": "disk full"})  # the same alert again
    eventually(lambda: len(_groups(client, integration)) == 2, describe="a new group, not the resolved one")

    paging = chain_with(client, "Paging", {"type": "notify_persons", "persons_to_notify": [people["bob"]["id"]]},
                        {"type": "wait", "duration": 600}, {"type": "notify_persons",
                                                            "persons_to_notify": [people["alice"]["id"]]})  # fmt: skip
    other = routed_integration(client, make_integration, paging)
    group_id = fire(client, other, "other")
    started = ['escalation started with chain "Paging"', 'triggered step "Notify multiple Users": bob',
               'triggered step "Wait" (10 minutes)']  # fmt: skip
    wait_for_actions(client, group_id, started)
    assert client.post(f"/api/v1/alert_groups/{group_id}/silence", json={"delay": 60}).status_code == 200
    silenced = [*started, "Silenced by admin for 1 minute", "escalation stopped because alert group was silenced"]
    wait_for_actions(client, group_id, silenced)
    clock.advance(61)  # the silence ends by itself: escalation starts again from the first step
    unsilenced = [*silenced, "Unsilenced automatically",
                  'escalation restarted with chain "Paging" because alert group was unsilenced']  # fmt: skip
    wait_for_actions(client, group_id, unsilenced)
    clock.advance(11)
    wait_for_actions(client, group_id, [*unsilenced, 'triggered step "Notify multiple Users": bob',
                                        'triggered step "Wait" (10 minutes)'])  # fmt: skip


def test_people_are_resolved_when_the_step_runs(client, make_integration, people, clock):
    team = people["team"]
    chain = chain_with(
        client, "Primary",
        {"type": "notify_team_members", "team_to_notify": team["id"]},
        {"type": "notify_person_next_each_time",
         "persons_to_notify_next_each_time": [people["bob"]["id"], people["alice"]["id"]]},
        {"type": "notify_on_call_from_schedule",
         "notify_on_call_from_schedule": _schedule_with_alice_on_call(client, people)["id"]},
        {"type": "notify_persons", "persons_to_notify": []},
    )  # fmt: skip
    integration = routed_integration(client, make_integration, chain)
    first = fire(client, integration, "first")
    wait_for_actions(client, first, [
        STARTED,
        'triggered step "Notify all team members" (team SRE): alice, bob',
        'triggered step "Notify User (next each time)": alice',
        "triggered step \"Notify on-call from Schedule 'Primary on-call'\": alice",
        'skipped escalation step "Notify multiple Users" because no users are set',
        "escalation finished",
    ])  # fmt: skip
    # The queue is shared by every alert group: the next group notifies the next person.
    second = fire(client, integration, "second")
    eventually(lambda: 'triggered step "Notify User (next each time)": bob' in escalation_actions(client, second),
               describe="bob is next")  # fmt: skip

    entries = client.get(f"/api/v1/alert_groups/{first}/timeline/").get_json()["results"]
    scheduled = next(e for e in entries if "Schedule" in e["action"])
    assert [u["username"] for u in scheduled["details"]["users"]] == ["alice"]
    assert scheduled["details"]["schedule_id"].startswith("S")


def _schedule_with_alice_on_call(client, people) -> dict:
    now = datetime.now(UTC)
    shift = client.post("/api/v1/on_call_shifts/", json={
        "name": "Alice now", "type": "single_event", "time_zone": "UTC",
        "start": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "duration": 6 * 3600,
        "users": [people["alice"]["id"]],
    })  # fmt: skip
    assert shift.status_code == 201, shift.get_json()
    schedule = client.post("/api/v1/schedules/", json={
        "type": "calendar", "name": "Primary on-call", "time_zone": "UTC", "shifts": [shift.get_json()["id"]],
    })  # fmt: skip
    assert schedule.status_code == 201, schedule.get_json()
    return schedule.get_json()


def test_nobody_on_call_is_a_failed_step_and_escalation_goes_on(client, make_integration, people, clock):
    empty = client.post("/api/v1/schedules/", json={"type": "calendar", "name": "Empty", "time_zone": "UTC"})
    chain = chain_with(
        client, "Primary",
        {"type": "notify_on_call_from_schedule", "notify_on_call_from_schedule": empty.get_json()["id"]},
        {"type": "notify_persons", "persons_to_notify": [people["alice"]["id"]]},
    )  # fmt: skip
    group_id = fire(client, routed_integration(client, make_integration, chain))
    wait_for_actions(client, group_id, [
        STARTED,
        'escalation step "Notify Schedule" "Empty" skipped: there are no users to notify for this schedule slot.',
        NOTIFY_ALICE, "escalation finished",
    ])  # fmt: skip
    entries = client.get(f"/api/v1/alert_groups/{group_id}/timeline/").get_json()["results"]
    assert [e["type"] for e in entries if "skipped" in e["action"]] == [17]  # OnCall's "escalation failed"


def test_a_group_without_a_chain_and_one_resolved_by_its_source_do_not_escalate(client, make_integration, people):
    no_chain = routed_integration(client, make_integration, None)
    group_id = fire(client, no_chain)
    chain = chain_with(client, "Primary", {"type": "notify_persons", "persons_to_notify": [people["alice"]["id"]]})
    routed = routed_integration(client, make_integration, chain)
    # Its first alert is already a resolve signal: the group is resolved before escalation starts.
    send(client, routed, {"title": "gone", "alert_uid": "gone", "state": "ok"})
    resolved = wait_for_groups(client, routed["id"], 1, state="resolved")[0]["id"]
    fire(client, routed, "firing")  # a group that does escalate, processed after the other two
    eventually(lambda: len(_groups(client, routed)) == 2 and all(
        NOTIFY_ALICE in escalation_actions(client, g["id"]) for g in _groups(client, routed) if g["id"] != resolved
    ), describe="the firing group escalated")  # fmt: skip
    assert escalation_actions(client, group_id) == []
    assert escalation_actions(client, resolved) == ["Resolved by alert source"]


def test_direct_paging_users_into_a_group_and_a_team_through_its_integration(client, make_integration, people, runtime):
    # Paging users with no group: an alert on the "No team" direct paging integration.
    response = client.post("/api/v1/escalation/", json={
        "title": "Database down", "message": "<b>help</b>",
        "users": [{"id": people["alice"]["id"], "important": True}, {"id": people["bob"]["id"]}],
    })  # fmt: skip
    assert response.status_code == 200, response.get_json()
    group = response.get_json()
    assert group["id"].startswith("I") and group["title"] == "Database down"
    entries = client.get(f"/api/v1/alert_groups/{group['id']}/timeline/").get_json()["results"]
    paged = [e for e in entries if e["type"] == 23]
    assert [e["action"] for e in paged] == ["admin paged user alice", "admin paged user bob"]
    assert [e["details"]["important"] for e in paged] == [True, False]
    integrations = client.get("/api/v1/integrations/").get_json()["results"]
    assert [i["name"] for i in integrations if i["type"] == "direct_paging"] == ["Direct paging (No team)"]

    # More responders for the same group; a resolved group takes none.
    again = client.post("/api/v1/escalation/", json={"alert_group_id": group["id"], "users": [{"id": people["bob"]["id"]}]})
    assert again.status_code == 200 and again.get_json()["id"] == group["id"]
    assert client.post(f"/api/v1/alert_groups/{group['id']}/resolve").status_code == 200
    refused = client.post("/api/v1/escalation/", json={"alert_group_id": group["id"], "users": [{"id": people["bob"]["id"]}]})
    assert (refused.status_code, refused.get_json()) == (400, {"detail": "Cannot add responders for a resolved alert group"})

    # A team: its direct paging integration (made once) routes the page to the team's chain.
    team = people["team"]
    first = client.post("/api/v1/escalation/", json={"team": team["id"], "message": "look"})
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["title"] == "admin is paging SRE to join escalation"
    team_integration = next(i for i in client.get("/api/v1/integrations/").get_json()["results"]
                            if i["name"] == "Direct paging (SRE team)")  # fmt: skip
    chain = chain_with(client, "Team chain", {"type": "notify_team_members", "team_to_notify": team["id"]})
    routes = client.get(f"/api/v1/routes/?integration_id={team_integration['id']}").get_json()["results"]
    assert [r["routing_regex"] for r in routes] == ["{{ payload.oncall.important }}", None]
    assert client.put(f"/api/v1/routes/{routes[-1]['id']}/", json={"escalation_chain_id": chain["id"]}).status_code == 200
    second = client.post("/api/v1/escalation/", json={"team": team["id"]}).get_json()
    assert second["integration_id"] == team_integration["id"] and second["id"] != first.get_json()["id"]
    eventually(lambda: 'triggered step "Notify all team members" (team SRE): alice, bob'
               in escalation_actions(client, second["id"]), describe="the team's chain ran")  # fmt: skip


@pytest.mark.parametrize("body, detail", [
    ({}, "No team or user(s) specified"),
    ({"users": [{"id": "UNOSUCHUSER1"}]}, "User UNOSUCHUSER1 does not exist"),
    ({"alert_group_id": "INOSUCHGROUP", "users": [{"id": "x"}]}, "User x does not exist"),
    ({"team": "TNOSUCHTEAM1"}, "Team TNOSUCHTEAM1 does not exist"),
])  # fmt: skip
def test_direct_paging_refusals(client, body, detail):
    response = client.post("/api/v1/escalation/", json=body)
    assert (response.status_code, response.get_json()) == (400, {"detail": detail})


def test_replay_rebuilds_the_escalation_timeline_identically(client, make_integration, people, runtime, clock):
    chain = chain_with(client, "Primary", {"type": "notify_persons", "persons_to_notify": [people["alice"]["id"]]},
                       {"type": "wait", "duration": 60}, {"type": "repeat_escalation"})  # fmt: skip
    group_id = fire(client, routed_integration(client, make_integration, chain))
    wait_for_actions(client, group_id, [STARTED, NOTIFY_ALICE, 'triggered step "Wait" (1 minute)'])
    clock.advance(61)
    eventually(lambda: "escalation started from the beginning" in escalation_actions(client, group_id),
               describe="the repeat")  # fmt: skip
    assert client.post(f"/api/v1/alert_groups/{group_id}/acknowledge").status_code == 200
    eventually(lambda: escalation_actions(client, group_id)[-1].startswith("escalation stopped"), describe="stop")
    query = "SELECT * FROM timeline ORDER BY alert_group_id, position, seq"
    before = runtime.db.query(query)
    deadlines = runtime.db.query("SELECT * FROM deadlines ORDER BY kind, subject")
    runtime.rebuild_read_models()
    assert runtime.db.query(query) == before
    assert runtime.db.query("SELECT * FROM deadlines ORDER BY kind, subject") == deadlines
