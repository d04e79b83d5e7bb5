"""`tocsin token list` and `tocsin token revoke`, through the real command line and the API, on
both backends. The command line runs with its own runtime, as another process would."""

from __future__ import annotations

import time
from uuid import UUID

from domain.configuration import token_digest
from projections.queries import api_token_by_hash
from tests.conftest import eventually
from web.api import TOKEN_CACHE_SECONDS


def create(tocsin, name: str, role: str = "viewer") -> str:
    code, out, _ = tocsin("token", "create", "--name", name, "--role", role)
    assert code == 0
    return out.splitlines()[-1]


def listed(tocsin) -> dict[str, list[str]]:
    """`token list` as {name: [id, role, created, revoked]}, checking its header."""
    code, out, _ = tocsin("token", "list")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == ["ID", "NAME", "ROLE", "CREATED", "REVOKED"]
    rows = {}
    for line in lines:
        token_id, name, role, created, revoked = line.split()
        rows[name] = [token_id, role, created, revoked]
    return rows


def test_a_revoked_token_is_refused_within_the_cache_lifetime(app, client, tocsin):
    token = create(tocsin, "ci-deploy", "editor")
    caller = app.test_client()
    auth = {"Authorization": token}
    assert caller.get("/api/v1/alert_groups/", headers=auth).status_code == 200  # now cached as valid

    rows = listed(tocsin)
    assert set(rows) == {"admin", "ci-deploy"}
    token_id, role, created, revoked = rows["ci-deploy"]
    assert token_id.startswith("K") and len(token_id) == 13
    assert (role, revoked) == ("editor", "-")
    assert created.endswith("Z")
    _, out, _ = tocsin("token", "list")
    assert token not in out and token_digest(token) not in out  # never the secret

    code, out, _ = tocsin("token", "revoke", "ci-d")
    assert code == 0
    assert f"Revoked API token {token_id} 'ci-deploy' (editor)" in out
    assert f"within {TOKEN_CACHE_SECONDS:g} seconds" in out
    revoked_at = time.monotonic()

    eventually(
        lambda: caller.get("/api/v1/alert_groups/", headers=auth).status_code == 403,
        timeout=TOKEN_CACHE_SECONDS + 2,
        describe="the revoked token refused",
    )
    assert time.monotonic() - revoked_at <= TOKEN_CACHE_SECONDS + 0.5
    refused = caller.get("/api/v1/integrations/", headers=auth)
    assert (refused.status_code, refused.get_json()) == (403, {"detail": "Invalid token."})
    assert client.get("/api/v1/alert_groups/").status_code == 200  # other tokens still work

    token_id_after, _, _, revoked = listed(tocsin)["ci-deploy"]
    assert token_id_after == token_id and revoked.endswith("Z") and revoked >= created


def test_revoke_by_id_name_or_unique_prefix(runtime, tocsin):
    create(tocsin, "ops")
    create(tocsin, "ops-nightly")
    create(tocsin, "ci-a")
    create(tocsin, "ci-b")

    code, _, err = tocsin("token", "revoke", "ci")
    assert code == 1 and "matches 2 tokens" in err and "give the id" in err
    code, _, err = tocsin("token", "revoke", "nobody")
    assert code == 1 and "no valid API token" in err
    assert tocsin("token", "revoke", "  ")[0] == 2
    assert {name for name, row in listed(tocsin).items() if row[3] != "-"} == set()

    assert tocsin("token", "revoke", "ops")[0] == 0  # the exact name wins over a longer one
    ci_a = listed(tocsin)["ci-a"][0]
    assert tocsin("token", "revoke", ci_a.lower())[0] == 0  # the id, in any case
    code, out, _ = tocsin("token", "revoke", ci_a)
    assert (code, out.strip()) == (0, f"API token {ci_a} 'ci-a' (viewer) was already revoked")
    assert tocsin("token", "revoke", "ci")[0] == 0  # now only ci-b is a valid "ci..."

    rows = listed(tocsin)
    assert {name for name, row in rows.items() if row[3] != "-"} == {"ops", "ci-a", "ci-b"}
    # Each revocation is one event on the token, however often it was asked for.
    token_uuid = runtime.db.query_one("SELECT uuid FROM api_tokens WHERE name = 'ci-a'")["uuid"]
    assert runtime.config.repository.get(UUID(token_uuid)).version == 2


def test_a_revocation_survives_a_replay(runtime, tocsin):
    token = create(tocsin, "temporary", "admin")
    assert tocsin("token", "revoke", "temporary")[0] == 0
    revoked = listed(tocsin)["temporary"][3]

    code, out, _ = tocsin("replay")
    assert code == 0
    assert api_token_by_hash(runtime.db, token_digest(token)) is None
    assert listed(tocsin)["temporary"][3] == revoked


def test_names_with_control_characters_are_listed_on_one_line(tocsin):
    create(tocsin, "evil\nname\x1b[2J", "viewer")
    code, out, _ = tocsin("token", "list")
    assert code == 0
    assert "\x1b" not in out
    assert r"evil\nname\x1b[2J" in out
    assert len(out.splitlines()) == 2  # the header and the one token
