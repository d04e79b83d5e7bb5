"""Users and teams, through the API in OnCall's shapes and through the command line, on both
backends: who may change them, what is refused, tokens that belong to users, timelines that name
them, and read models that a replay rebuilds exactly."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import pytest

from domain.configuration import token_digest
from projections.queries import api_token_by_hash
from tests.conftest import eventually
from tests.integration.conftest import inbound_path, wait_for_groups
from web.api import TOKEN_CACHE_SECONDS

USER_FIELDS = {"id", "grafana_id", "email", "slack", "username", "role", "is_phone_number_verified", "timezone", "teams"}
TEAM_FIELDS = {"id", "grafana_id", "name", "email", "avatar_url"}
FORBIDDEN = (403, {"detail": "You do not have permission to perform this action."})


def make_team(client, name: str, **fields) -> dict:
    response = client.post("/api/v1/teams/", json={"name": name, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def make_user(client, username: str, **fields) -> dict:
    response = client.post("/api/v1/users/", json={"username": username, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def usernames(client, query: str = "") -> list[str]:
    response = client.get(f"/api/v1/users/{query}")
    assert response.status_code == 200, response.get_json()
    return [user["username"] for user in response.get_json()["results"]]


def token_client(app, token: str):
    caller = app.test_client()
    caller.environ_base["HTTP_AUTHORIZATION"] = token
    return caller


def cli_token(tocsin, *argv: str) -> str:
    code, out, err = tocsin("token", "create", *argv)
    assert code == 0, err
    return out.splitlines()[-1]


# --- the API ------------------------------------------------------------------------------------


def test_users_in_oncall_shapes_with_filters_teams_and_current(client):
    sre = make_team(client, "SRE", email="sre@example.com")
    dba = make_team(client, "DBA")
    alice = make_user(
        client, "alice", email="Alice@Example.com", role="editor", timezone="Europe/Paris", teams=[sre["id"], dba["id"]]
    )
    assert set(alice) == USER_FIELDS
    assert alice["id"].startswith("U") and len(alice["id"]) == 13
    assert {k: alice[k] for k in ("grafana_id", "slack", "is_phone_number_verified")} == {
        "grafana_id": None, "slack": None, "is_phone_number_verified": False,
    }  # fmt: skip
    assert (alice["username"], alice["email"], alice["role"], alice["timezone"]) == (
        "alice", "Alice@Example.com", "editor", "Europe/Paris",
    )  # fmt: skip
    assert alice["teams"] == [sre["id"], dba["id"]]
    bob = make_user(client, "bob")
    assert (bob["role"], bob["timezone"], bob["email"], bob["teams"]) == ("viewer", "UTC", None, [])

    page = client.get("/api/v1/users/").get_json()
    # The admin who runs these requests is a user too (its token was created for it).
    assert [u["username"] for u in page["results"]] == ["admin", "alice", "bob"]
    assert (page["count"], page["page_size"], page["current_page_number"], page["total_pages"]) == (3, 100, 1, 1)
    assert page["results"][1] == alice

    assert usernames(client, "?username=ALICE") == ["alice"]  # case does not count, as in OnCall
    assert usernames(client, "?email=alice@example.COM") == ["alice"]
    assert usernames(client, "?username=ali") == []  # exact, not a prefix
    assert usernames(client, "?roles=viewer") == ["bob"]
    assert usernames(client, "?roles=0&roles=1") == ["admin", "alice"]  # OnCall's legacy role numbers
    refused = client.get("/api/v1/users/?roles=owner")
    assert refused.status_code == 400 and list(refused.get_json()) == ["roles"]

    short = client.get("/api/v1/users/?short=true&username=alice").get_json()["results"]
    assert short == [{k: alice[k] for k in USER_FIELDS - {"slack", "timezone", "teams"}}]

    assert client.get(f"/api/v1/users/{alice['id']}").get_json() == alice  # no trailing slash needed
    current = client.get("/api/v1/users/current/").get_json()
    assert (current["username"], current["role"]) == ("admin", "admin")
    assert client.get("/api/v1/users/UNOSUCHUSER1/").status_code == 404

    paged = client.get("/api/v1/users/?perpage=2&page=2").get_json()
    assert [u["username"] for u in paged["results"]] == ["bob"]
    assert paged["previous"] == "http://tocsin.test/api/v1/users/?perpage=2&page=1"


def test_admins_update_and_delete_users(client, runtime):
    sre = make_team(client, "SRE")
    ops = make_team(client, "Ops")
    alice = make_user(client, "alice", email="alice@example.com", teams=[sre["id"]])

    changed = client.patch(f"/api/v1/users/{alice['id']}/", json={"role": "admin", "teams": [ops["id"], sre["id"]]})
    assert changed.status_code == 200, changed.get_json()
    assert {k: changed.get_json()[k] for k in ("role", "teams", "email")} == {
        "role": "admin", "teams": [ops["id"], sre["id"]], "email": "alice@example.com",
    }  # fmt: skip
    renamed = client.put(f"/api/v1/users/{alice['id']}/", json={"username": "alice.b", "email": None})
    assert (renamed.get_json()["username"], renamed.get_json()["email"]) == ("alice.b", None)
    assert renamed.get_json()["teams"] == [ops["id"], sre["id"]]  # left out: left as they were
    # The names she gave up are free again; the new one is hers.
    make_user(client, "alice", email="alice@example.com")
    assert client.post("/api/v1/users/", json={"username": "ALICE.B"}).status_code == 400
    # A change to what already is records nothing.
    user_uuid = UUID(runtime.db.query_one("SELECT uuid FROM users WHERE id = %s", (alice["id"],))["uuid"])
    version = runtime.config.repository.get(user_uuid).version
    assert client.patch(f"/api/v1/users/{alice['id']}/", json={"role": "admin"}).status_code == 200
    assert runtime.config.repository.get(user_uuid).version == version

    assert client.delete(f"/api/v1/users/{alice['id']}/").status_code == 204
    assert client.get(f"/api/v1/users/{alice['id']}/").status_code == 404
    assert client.patch(f"/api/v1/users/{alice['id']}/", json={"role": "viewer"}).status_code == 404
    assert client.delete(f"/api/v1/users/{alice['id']}/").status_code == 404
    assert usernames(client) == ["admin", "alice"]
    make_user(client, "alice.b")  # a deleted user's username can be someone else's


def test_teams_in_oncall_shapes_and_a_deleted_team_leaves_its_users(client):
    sre = make_team(client, "SRE", email="sre@example.com", avatar_url="https://example.com/sre.png")
    assert set(sre) == TEAM_FIELDS
    assert sre["id"].startswith("T") and len(sre["id"]) == 13
    assert (sre["name"], sre["email"], sre["avatar_url"], sre["grafana_id"]) == (
        "SRE", "sre@example.com", "https://example.com/sre.png", None,
    )  # fmt: skip
    dba = make_team(client, "DBA")
    alice = make_user(client, "alice", teams=[sre["id"], dba["id"]])

    page = client.get("/api/v1/teams/").get_json()
    assert [t["name"] for t in page["results"]] == ["SRE", "DBA"] and page["page_size"] == 50
    assert [t["id"] for t in client.get("/api/v1/teams/?name=DBA").get_json()["results"]] == [dba["id"]]
    assert client.get("/api/v1/teams/?name=dba").get_json()["results"] == []  # OnCall's exact match
    assert client.get(f"/api/v1/teams/{sre['id']}").get_json() == sre

    updated = client.patch(f"/api/v1/teams/{dba['id']}/", json={"name": "Databases", "email": "db@example.com"})
    assert updated.status_code == 200
    assert (updated.get_json()["name"], updated.get_json()["email"]) == ("Databases", "db@example.com")

    assert client.delete(f"/api/v1/teams/{sre['id']}/").status_code == 204
    assert client.get(f"/api/v1/teams/{sre['id']}/").status_code == 404
    assert [t["name"] for t in client.get("/api/v1/teams/").get_json()["results"]] == ["Databases"]
    assert client.get(f"/api/v1/users/{alice['id']}/").get_json()["teams"] == [dba["id"]]
    refused = client.patch(f"/api/v1/users/{alice['id']}/", json={"teams": [sre["id"]]})
    assert (refused.status_code, refused.get_json()) == (
        400, {"teams": [f'Invalid pk "{sre["id"]}" - object does not exist.']},
    )  # fmt: skip
    assert make_team(client, "sre")["name"] == "sre"  # the deleted team's name is free again


def test_viewers_and_editors_read_but_only_admins_change_users_and_teams(app, client, tocsin):
    team = make_team(client, "SRE")
    user = make_user(client, "alice")
    for role in ("viewer", "editor"):
        caller = token_client(app, cli_token(tocsin, "--name", f"{role}-bot", "--role", role))
        assert caller.get("/api/v1/users/").status_code == 200
        assert caller.get(f"/api/v1/teams/{team['id']}/").status_code == 200
        for method, path, body in (
            ("post", "/api/v1/users/", {"username": "mallory"}),
            ("patch", f"/api/v1/users/{user['id']}/", {"role": "admin"}),
            ("delete", f"/api/v1/users/{user['id']}/", None),
            ("post", "/api/v1/teams/", {"name": "Mallory's"}),
            ("put", f"/api/v1/teams/{team['id']}/", {"name": "Taken over"}),
            ("delete", f"/api/v1/teams/{team['id']}/", None),
        ):
            response = getattr(caller, method)(path, json=body)
            assert (response.status_code, response.get_json()) == FORBIDDEN, (role, method, path)
    assert usernames(client) == ["admin", "alice", "viewer-bot", "editor-bot"]
    assert client.get(f"/api/v1/teams/{team['id']}/").get_json()["name"] == "SRE"
    anonymous = app.test_client().get("/api/v1/users/")
    assert (anonymous.status_code, anonymous.get_json()) == (403, {"detail": "Invalid token."})


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "username"),
        ({"username": ""}, "username"),
        ({"username": "   "}, "username"),
        ({"username": "a\x00b"}, "username"),
        ({"username": "tab\there"}, "username"),
        ({"username": "x" * 151}, "username"),
        ({"username": "x" * 1_000_000}, "username"),  # under the body limit (2 MiB; above: 413)
        ({"username": 12}, "username"),
        ({"username": "ok", "email": "not-an-email"}, "email"),
        ({"username": "ok", "email": "a" * 250 + "@example.com"}, "email"),
        ({"username": "ok", "email": "a\x00@example.com"}, "email"),
        ({"username": "ok", "role": "owner"}, "role"),
        ({"username": "ok", "role": 10**400}, "role"),
        ({"username": "ok", "role": "admin" * 100_000}, "role"),
        ({"username": "ok", "timezone": "Europe/" * 100_000}, "timezone"),
        ({"username": "ok", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"username": "ok", "timezone": "../../../etc/passwd"}, "timezone"),
        ({"username": "ok", "timezone": "Europe/Paris\x00"}, "timezone"),
        ({"username": "ok", "teams": "TABC"}, "teams"),
        ({"username": "ok", "teams": ["T" * 200]}, "teams"),
        ({"username": "ok", "teams": ["TNOSUCHTEAM1"]}, "teams"),
        ({"username": "ok", "teams": ["TX"] * 101}, "teams"),
    ],
)
def test_invalid_users_are_refused_with_a_field_error(client, body, field):
    response = client.post("/api/v1/users/", json=body)
    assert response.status_code == 400, response.get_json()
    errors = response.get_json()
    assert list(errors) == [field], errors
    messages = errors[field]
    if isinstance(messages, dict):  # a list field's errors are per index
        messages = [message for per_item in messages.values() for message in per_item]
    assert messages and all(isinstance(message, str) and len(message) < 200 for message in messages), messages
    assert usernames(client) == ["admin"]


def test_taken_names_and_hostile_bodies_are_refused(client):
    make_user(client, "alice", email="alice@example.com")
    make_team(client, "SRE")
    for body, expected in (
        ({"username": "ALICE"}, {"username": ["user with this username already exists."]}),
        ({"username": "alice2", "email": "ALICE@example.com"}, {"email": ["user with this email already exists."]}),
    ):
        response = client.post("/api/v1/users/", json=body)
        assert (response.status_code, response.get_json()) == (400, expected)
    taken = client.post("/api/v1/teams/", json={"name": "sre"})
    assert (taken.status_code, taken.get_json()) == (400, {"name": ["team with this name already exists."]})
    for body in ({"name": "a\x00"}, {"name": "x" * 151}, {"name": "ok", "email": "nope"},
                 {"name": "ok", "avatar_url": "javascript:alert(1)"}, {}):  # fmt: skip
        response = client.post("/api/v1/teams/", json=body)
        assert response.status_code == 400 and set(response.get_json()) <= {"name", "email", "avatar_url"}, body

    deep = "[" * 100_000 + "]" * 100_000
    for path in ("/api/v1/users/", "/api/v1/teams/"):
        for raw in (deep, '{"username": ' + deep + "}", "[]", "null", "not json", '"text"'):
            response = client.post(path, data=raw, content_type="application/json")
            assert response.status_code == 400, (path, raw[:20])
            assert list(response.get_json()) == ["detail"], (path, raw[:20])
    assert usernames(client) == ["admin", "alice"]
    # Query strings are data too.
    assert usernames(client, "?username=%00") == []
    assert usernames(client, "?email=" + "x" * 100_000) == []
    assert client.get("/api/v1/teams/?name=%00").get_json()["results"] == []
    assert client.get("/api/v1/users/%00/").status_code == 404


def test_one_username_created_at_once_from_many_requests_is_created_once(app, admin_token, client):
    def create(index: int) -> int:
        with app.test_client() as c:
            return c.post(
                "/api/v1/users/", json={"username": "Rush", "email": f"rush{index}@example.com"},
                headers={"Authorization": admin_token},
            ).status_code  # fmt: skip

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(8)))
    assert sorted(statuses) == [201] + [400] * 7, statuses
    assert usernames(client) == ["admin", "Rush"]


def test_a_deleted_users_tokens_stop_working_and_a_role_change_follows_the_user(app, client, runtime, tocsin):
    make_user(client, "carol", role="admin")
    token = cli_token(tocsin, "--user", "carol")
    carol = token_client(app, token)
    assert carol.post("/api/v1/teams/", json={"name": "Carol's"}).status_code == 201
    assert api_token_by_hash(runtime.db, token_digest(token))["role"] == "admin"

    user_id = client.get("/api/v1/users/?username=carol").get_json()["results"][0]["id"]
    client.patch(f"/api/v1/users/{user_id}/", json={"role": "viewer"})
    # The token acts with its user's role of the moment (looked up again once its cache expires).
    assert api_token_by_hash(runtime.db, token_digest(token))["role"] == "viewer"
    eventually(
        lambda: carol.post("/api/v1/teams/", json={"name": "Again"}).status_code == 403,
        timeout=TOKEN_CACHE_SECONDS + 2, describe="the demoted user's token refused to write",
    )  # fmt: skip

    client.delete(f"/api/v1/users/{user_id}/")
    assert api_token_by_hash(runtime.db, token_digest(token)) is None
    eventually(
        lambda: carol.get("/api/v1/users/").status_code == 403,
        timeout=TOKEN_CACHE_SECONDS + 2, describe="the deleted user's token refused",
    )  # fmt: skip
    code, _, err = tocsin("token", "create", "--user", "carol")
    assert code == 1 and "no user 'carol'" in err


# --- the command line ---------------------------------------------------------------------------


def test_users_and_teams_from_the_command_line(client, tocsin):
    code, out, err = tocsin("team", "create", "--name", "SRE", "--email", "sre@example.com")
    assert code == 0, err
    team_id = out.split()[1]
    assert team_id.startswith("T") and "'SRE' created" in out
    assert tocsin("team", "create", "--name", "sre")[0] == 1  # taken, whatever the case
    assert tocsin("team", "create", "--name", "DBA")[0] == 0

    code, out, err = tocsin(
        "user", "create", "--username", "dave", "--email", "dave@example.com", "--role", "editor",
        "--timezone", "America/New_York", "--team", "sre", "--team", client.get("/api/v1/teams/?name=DBA")
        .get_json()["results"][0]["id"],
    )  # fmt: skip
    assert code == 0, err
    assert "tocsin token create --user 'dave'" in out
    dave = client.get("/api/v1/users/?username=dave").get_json()["results"][0]
    assert (dave["email"], dave["role"], dave["timezone"]) == ("dave@example.com", "editor", "America/New_York")
    assert dave["teams"][0] == team_id and len(dave["teams"]) == 2

    # Refused as the API refuses, with the field named.
    code, _, err = tocsin("user", "create", "--username", "erin", "--timezone", "Nowhere/Special")
    assert code == 2 and err.startswith("timezone:")
    code, _, err = tocsin("user", "create", "--username", "DAVE")
    assert code == 1 and "user with this username already exists." in err
    code, _, err = tocsin("user", "create", "--username", "erin", "--team", "nobody")
    assert code == 1 and "no team 'nobody'" in err
    assert tocsin("user", "create", "--username", "erin", "--role", "owner")[0] == 2  # argparse's choices

    code, out, _ = tocsin("user", "list")
    header, *lines = out.splitlines()
    assert header.split() == ["ID", "USERNAME", "ROLE", "EMAIL", "TIMEZONE", "TEAMS"]
    assert [line.split()[1] for line in lines] == ["admin", "dave"]
    code, out, _ = tocsin("team", "list")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["SRE", "DBA"]


def test_tokens_belong_to_users_and_timelines_name_them(app, client, tocsin, make_integration):
    make_user(client, "erin", role="editor")
    code, out, err = tocsin("token", "create", "--user", "ERIN", "--name", "erin-laptop")
    assert code == 0, err
    assert "API token 'erin-laptop' of user U" in out and "'erin' (editor)" in out
    erin = token_client(app, out.splitlines()[-1])
    assert erin.get("/api/v1/users/current/").get_json()["username"] == "erin"

    # The older form: --name is the user's too, created with --role when missing, used when there.
    ops = token_client(app, cli_token(tocsin, "--name", "ops", "--role", "editor"))
    ops_user = ops.get("/api/v1/users/current/").get_json()
    assert (ops_user["username"], ops_user["role"]) == ("ops", "editor")
    cli_token(tocsin, "--name", "ops")  # a second token of the same user
    assert usernames(client, "?username=ops") == ["ops"]
    code, _, err = tocsin("token", "create", "--name", "ops", "--role", "admin")
    assert code == 1 and "'ops' is an editor" in err
    code, _, err = tocsin("token", "create", "--user", "erin", "--role", "admin")
    assert code == 2 and "--role goes with --name only" in err
    assert tocsin("token", "create")[0] == 2
    code, _, err = tocsin("token", "create", "--user", "nobody")
    assert code == 1 and "no user 'nobody'" in err

    hook = make_integration("formatted_webhook", name="users")
    for uid in ("a", "b"):
        client.post(inbound_path(hook), json={"alert_uid": uid, "title": uid})
    groups = {g["title"]: g for g in wait_for_groups(client, hook["id"], 2)}
    assert erin.post(f"/api/v1/alert_groups/{groups['a']['id']}/acknowledge").status_code == 200
    assert ops.post(f"/api/v1/alert_groups/{groups['a']['id']}/silence", json={"delay": 60}).status_code == 400
    assert ops.post(f"/api/v1/alert_groups/{groups['b']['id']}/silence", json={"delay": 60}).status_code == 200
    assert erin.post(f"/api/v1/alert_groups/{groups['a']['id']}/resolve").status_code == 200

    def entries(group_id: str) -> list[tuple]:
        timeline = client.get(f"/api/v1/alert_groups/{group_id}/timeline/").get_json()["results"]
        return [(entry["action"], entry["author"]) for entry in timeline if entry["author"]]

    assert entries(groups["a"]["id"]) == [("Acknowledged by erin", "erin"), ("Resolved by erin", "erin")]
    assert entries(groups["b"]["id"]) == [("Silenced by ops for 1 minute", "ops")]
    resolved = client.get(f"/api/v1/alert_groups/{groups['a']['id']}/").get_json()
    assert (resolved["acknowledged_by"], resolved["resolved_by"]) == ("erin", "erin")


# --- replay -------------------------------------------------------------------------------------

USER_READ_MODELS = ("users", "teams", "team_members", "api_tokens")


def snapshot(runtime) -> dict[str, list]:
    return {
        table: sorted(json.dumps(row, sort_keys=True, default=str) for row in runtime.db.query(f"SELECT * FROM {table}"))
        for table in USER_READ_MODELS
    }


def test_replay_rebuilds_users_and_teams_exactly(runtime, client, tocsin):
    sre = make_team(client, "SRE")
    dba = make_team(client, "DBA")
    gone = make_team(client, "Gone")
    alice = make_user(client, "alice", email="a@example.com", teams=[sre["id"], gone["id"], dba["id"]])
    bob = make_user(client, "bob", teams=[dba["id"]])
    client.patch(f"/api/v1/users/{alice['id']}/", json={"role": "editor", "username": "Alice"})
    client.delete(f"/api/v1/teams/{gone['id']}/")
    client.patch(f"/api/v1/teams/{dba['id']}/", json={"name": "Databases"})
    cli_token(tocsin, "--user", "alice")
    cli_token(tocsin, "--name", "legacy", "--role", "viewer")
    client.delete(f"/api/v1/users/{bob['id']}/")
    runtime.catch_up()
    live = snapshot(runtime)
    assert len(live["users"]) == 4 and len(live["teams"]) == 3 and len(live["team_members"]) == 2

    code, out, _ = tocsin("replay")
    assert code == 0 and "users" in out
    assert snapshot(runtime) == live
    for batch_size in (1, 10_000):
        runtime.runners["config"].batch_size = batch_size
        runtime.rebuild_read_models()
        assert snapshot(runtime) == live, f"batch size {batch_size}"
    assert client.get(f"/api/v1/users/{alice['id']}/").get_json()["teams"] == [sre["id"], dba["id"]]


def test_the_openapi_document_describes_users_and_teams(client):
    import openapi_spec_validator as validator

    document = client.get("/api/v1/openapi.json").get_json()
    validator.validate(document)
    for plural in ("users", "teams"):
        assert set(document["paths"][f"/api/v1/{plural}/"]) == {"get", "post"}
        assert {"get", "put", "patch", "delete"} <= set(document["paths"][f"/api/v1/{plural}/{{id}}/"])
    assert set(document["components"]["schemas"]["User"]["properties"]) == USER_FIELDS
    assert set(document["components"]["schemas"]["Team"]["properties"]) == TEAM_FIELDS
