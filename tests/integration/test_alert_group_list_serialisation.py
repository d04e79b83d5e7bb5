"""The alert group list and detail answer exactly what ``AlertGroupSchema`` makes of each row.

The API writes each row's JSON once, splices in the stored payload text and keeps the result
for the next poll; these tests hold it to the straightforward serialisation (parse the payload,
dump the schema, ``jsonify``), including payloads that could confuse the splice, and check that a
changed group is never answered from the kept text. Both backends, real workers.
"""

from __future__ import annotations

import json

import pytest

from projections.queries import alert_group
from tests.integration.conftest import send, wait_for_groups
from tocsin.cli import create_token
from web.api import alert_groups as api_alert_groups
from web.api.schemas import AlertGroupSchema

BASE = "http://tocsin.test"
MARK = api_alert_groups._PAYLOAD_MARK
ENVELOPE_KEYS = ["count", "next", "previous", "results", "page_size", "current_page_number", "total_pages"]

# Everything a splice could get wrong: escapes, non-ASCII (BMP and astral), the mark itself.
AWKWARD = {
    "key": "awkward",
    "title": "Größe überschritten: 温度 🔥",
    "quotes": 'say "hi" and \'bye\'',
    "backslashes": "C:\\temp\\new \\u0041 \\\\",
    "controls": "tab\there\nnew line \u0001 \u2028",
    "mark": MARK,
    "quoted_mark": json.dumps(MARK),
    "mark_key": {MARK: [MARK, f"x{MARK}x"]},
    "numbers": [0, -0.0, 1.5, 1e300, 12345678901234567890],
    "empty": [{}, [], "", None, True, False],
}


def reference(row: dict) -> dict:
    """The group as the API wrote it before rows' JSON was kept: parse the payload, dump the schema."""
    last_alert = None
    if row.get("last_alert_id"):
        last_alert = {
            "id": row["last_alert_id"],
            "alert_group_id": row["id"],
            "created_at": row["last_alert_created_at"],
            "payload": json.loads(row["last_alert_payload"]) if row.get("last_alert_payload") else None,
        }
    permalinks = {"slack": None, "slack_app": None, "telegram": None, "web": f"{BASE}/alert-groups/{row['id']}"}
    return AlertGroupSchema().dump(
        {
            **row,
            "team_id": None,
            "created_at": row["started_at"],
            "labels": [],
            "permalinks": permalinks,
            "last_alert": last_alert,
        }
    )


def same_json(actual, expected) -> bool:
    """Equal values with keys in the same order (``json.dumps`` keeps insertion order)."""
    return json.dumps(actual) == json.dumps(expected)


def ordered_ids(runtime, integration_id: str) -> list[str]:
    rows = runtime.db.query(
        "SELECT id FROM alert_groups WHERE integration_id = %s ORDER BY started_at DESC, position DESC",
        (integration_id,),
    )
    return [row["id"] for row in rows]


def get(client, path: str, **query):
    response = client.get(path, query_string=query)
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    assert response.data.isascii() and response.data.endswith(b"\n")  # as jsonify writes it
    return response.get_json()


def assert_list_matches_schema(client, runtime, integration_id: str, **query) -> dict:
    page = get(client, "/api/v1/alert_groups/", integration_id=integration_id, **query)
    assert list(page) == ENVELOPE_KEYS
    size = int(query.get("perpage", 50))
    number = page["current_page_number"]
    ids = ordered_ids(runtime, integration_id)[(number - 1) * size : number * size]
    assert [group["id"] for group in page["results"]] == ids
    expected = [reference(alert_group(runtime.db, group_id)) for group_id in ids]
    assert same_json(page["results"], expected)
    return page


def assert_detail_matches_schema(client, runtime, group_id: str) -> dict:
    group = get(client, f"/api/v1/alert_groups/{group_id}/")
    assert same_json(group, reference(alert_group(runtime.db, group_id)))
    return group


@pytest.fixture
def keyed_webhook(make_integration) -> dict:
    """A webhook that groups by ``payload.key`` and titles groups by ``payload.title``."""
    return make_integration(
        "webhook",
        templates={"grouping_key": "{{ payload.key }}", "web": {"title": "{{ payload.title }}"}},
    )


def test_list_and_detail_match_the_schema_for_awkward_payloads(client, runtime, keyed_webhook):
    send(client, keyed_webhook, {"key": "plain", "title": "plain"})
    send(client, keyed_webhook, AWKWARD)
    send(client, keyed_webhook, {"key": "mark-title", "title": MARK})  # the mark in the row's own fields
    groups = wait_for_groups(client, keyed_webhook["id"], 3)

    assert_list_matches_schema(client, runtime, keyed_webhook["id"])
    for perpage in ("1", "2"):
        for page in ("1", "2", "3", "9"):
            assert_list_matches_schema(client, runtime, keyed_webhook["id"], perpage=perpage, page=page)
    for group in groups:
        assert_detail_matches_schema(client, runtime, group["id"])

    [awkward] = [g for g in groups if g["title"] == AWKWARD["title"]]
    assert awkward["last_alert"]["payload"] == AWKWARD
    [marked] = [g for g in groups if g["last_alert"]["payload"]["key"] == "mark-title"]
    assert marked["title"] == MARK


def test_a_changed_group_is_never_answered_from_kept_json(client, runtime, keyed_webhook):
    send(client, keyed_webhook, {"key": "k", "title": "first", "n": 1})
    [group] = wait_for_groups(client, keyed_webhook["id"], 1)
    assert_list_matches_schema(client, runtime, keyed_webhook["id"])  # now kept

    response = client.post(f"/api/v1/alert_groups/{group['id']}/acknowledge")
    assert response.status_code == 200
    [acknowledged] = assert_list_matches_schema(client, runtime, keyed_webhook["id"])["results"]
    assert (acknowledged["state"], acknowledged["acknowledged_by"]) == ("acknowledged", "admin")
    assert assert_detail_matches_schema(client, runtime, group["id"])["state"] == "acknowledged"

    send(client, keyed_webhook, {"key": "k", "title": "second", "n": 2})
    [joined] = wait_for_groups(client, keyed_webhook["id"], 1, alerts_count=2)
    assert joined["last_alert"]["payload"] == {"key": "k", "title": "second", "n": 2}
    assert joined["last_alert"]["id"] != group["last_alert"]["id"]
    assert_list_matches_schema(client, runtime, keyed_webhook["id"])
    assert assert_detail_matches_schema(client, runtime, group["id"])["alerts_count"] == 2

    # Acknowledged by a caller whose name is the mark: the row's own text holds it too.
    marked_caller = create_token(runtime, MARK, "editor")
    for action in ("unacknowledge", "acknowledge"):
        response = client.post(
            f"/api/v1/alert_groups/{group['id']}/{action}", headers={"Authorization": marked_caller}
        )
        assert response.status_code == 200
    [again] = assert_list_matches_schema(client, runtime, keyed_webhook["id"])["results"]
    assert again["acknowledged_by"] == MARK
    assert again["last_alert"]["payload"]["title"] == "second"


def test_rows_without_a_stored_payload_or_last_alert(app, client, runtime, keyed_webhook):
    send(client, keyed_webhook, {"key": "k", "title": "t"})
    [group] = wait_for_groups(client, keyed_webhook["id"], 1)
    row = alert_group(runtime.db, group["id"])
    # The alerts projection not caught up yet, or a group without alerts: no payload text.
    unprojected = {**row, "last_alert_created_at": None, "last_alert_payload": None}
    alertless = {**row, "last_alert_id": None, "last_alert_created_at": None, "last_alert_payload": None}

    with app.test_request_context():
        texts = api_alert_groups._rows_json([row, unprojected, alertless])

    written = [json.loads(text) for text in texts]
    assert same_json(written, [reference(row), reference(unprojected), reference(alertless)])
    assert written[1]["last_alert"]["payload"] is None
    assert written[2]["last_alert"] is None


def test_kept_json_is_bounded_and_least_recently_used_goes_first():
    cache = api_alert_groups._RowJsonCache(maxsize=2)
    cache.put_many({("a",): b"A", ("b",): b"B"})
    assert cache.get_many([("a",)]) == [b"A"]  # now "b" is the least recently used

    cache.put_many({("c",): b"C"})

    assert cache.get_many([("a",), ("b",), ("c",)]) == [b"A", None, b"C"]
