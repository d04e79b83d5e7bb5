"""ical schedules whose calendars are given as text, users' own iCal feeds across every
schedule, and what each schedule answer says about now and the next 30 days; on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import icalendar
import pytest
import recurring_ical_events

from projections.schedules import on_call_from_log, refresh_calendar, schedule_by_id
from tests.integration.test_schedules_api import (
    make_schedule,
    make_shift,
    make_user,
    one_event,
    wall_clock,
)
from tocsin.cli import create_token


@pytest.fixture
def people(client) -> dict[str, str]:
    return {name: make_user(client, name, role) for name, role in
            (("alice", "editor"), ("bob", "admin"), ("carol", "editor"), ("victor", "viewer"))}


def around_now(summary: str, hours: int = 1) -> str:
    now = datetime.now(UTC)
    return one_event(summary, now - timedelta(hours=hours), now + timedelta(hours=hours)).decode()


def test_an_uploaded_calendar_is_on_call_now_in_final_shifts_and_in_the_log(runtime, client, people):
    created = make_schedule(client, type="ical", name="Uploaded", ical_file_primary=around_now("alice"))
    assert created["on_call_now"] == [people["alice"]]
    assert created["ical_url_primary"] is None and "ical_file_primary" not in created  # write-only
    assert created["ical_error"] is None and created["ical_last_fetched_at"]
    assert created["has_gaps"] is True and created["empty_shifts"] == []

    today = datetime.now(UTC).date()
    window = f"?start_date={today - timedelta(days=1)}&end_date={today + timedelta(days=2)}"
    shifts = client.get(f"/api/v1/schedules/{created['id']}/final_shifts{window}").get_json()
    assert [(s["user_pk"], s["user_username"]) for s in shifts["results"]] == [(people["alice"], "alice")]

    # A calendar schedule takes an overrides calendar as text, and the override wins.
    rotation = make_shift(client, name="always", type="single_event", start=wall_clock(datetime.now(UTC) - timedelta(days=1)),
                          duration=5 * 86400, users=[people["carol"]])
    calendar = make_schedule(client, type="calendar", name="With overrides", time_zone="Europe/Berlin",
                             shifts=[rotation["id"]], ical_file_overrides=around_now("bob@EXAMPLE.com"))
    assert calendar["on_call_now"] == [people["bob"]]
    assert calendar["ical_url_overrides"] is None

    before = datetime.now(UTC)
    changed = client.patch(f"/api/v1/schedules/{created['id']}/", json={"ical_file_primary": around_now("[L2] carol")})
    assert changed.status_code == 200 and changed.get_json()["on_call_now"] == [people["carol"]]
    # The same text again records nothing new.
    position = runtime.config.recorder.max_notification_id()
    client.patch(f"/api/v1/schedules/{created['id']}/", json={"name": "Uploaded"})
    assert runtime.config.recorder.max_notification_id() == position
    # Who was on call before the upload changed comes from the log.
    assert on_call_from_log(runtime.db, runtime.config, created["id"], before) == {people["alice"]}
    assert on_call_from_log(runtime.db, runtime.config, created["id"], datetime.now(UTC)) == {people["carol"]}

    # Taking the overrides calendar away stops it counting (the stored copy is not used).
    cleared = client.patch(f"/api/v1/schedules/{calendar['id']}/", json={"ical_file_overrides": None})
    assert cleared.status_code == 200 and cleared.get_json()["on_call_now"] == [people["carol"]]
    assert on_call_from_log(runtime.db, runtime.config, calendar["id"], datetime.now(UTC)) == {people["carol"]}

    runtime.catch_up()

    def tables():
        return {t: runtime.db.query(f"SELECT * FROM {t} ORDER BY 1") for t in ("schedules", "on_call_shifts")}

    live = tables()
    runtime.rebuild_read_models()
    assert tables() == live


HUGE = "BEGIN:VCALENDAR\r\n" + "X-FILL:" + "x" * (1024 * 1024) + "\r\nEND:VCALENDAR\r\n"
MINUTELY = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:m\r\nSUMMARY:alice\r\n"
            "DTSTART:20260101T000000Z\r\nDTEND:20260101T000100Z\r\nRRULE:FREQ=MINUTELY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.mark.parametrize("fields, expected", [
    ({"ical_file_primary": "BEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n"},
     {"ical_file_primary": ["The text is not an iCalendar VCALENDAR"]}),
    ({"ical_file_primary": MINUTELY}, {"ical_file_primary": ["Recurrences more frequent than hourly are not supported"]}),
    ({"ical_file_primary": HUGE}, {"ical_file_primary": ["Ensure this field has no more than 1048576 characters."]}),
    ({"ical_file_primary": "BEGIN:VCALENDAR\x00"}, {"ical_file_primary": ["Null characters are not allowed."]}),
    ({"ical_file_primary": ["BEGIN:VCALENDAR"]}, {"ical_file_primary": ["Not a valid string."]}),
    ({"ical_file_primary": "", "ical_url_primary": None}, {"ical_url_primary": ["This field is required."]}),
    ({"ical_file_primary": "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "ical_url_primary": "http://127.0.0.1:9/x.ics"},
     {"ical_file_primary": ["Give either ical_url_primary or ical_file_primary, not both."]}),
    ({"ical_url_primary": "http://127.0.0.1:9/x.ics",
      "ical_file_overrides": "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:y\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"},
     {"ical_file_overrides": ["An event has no DTSTART (UID y)"]}),
])
def test_a_calendar_given_as_text_that_cannot_be_used_gets_a_clear_400(client, fields, expected):
    response = client.post("/api/v1/schedules/", json={"type": "ical", "name": "Refused", **fields})
    assert (response.status_code, response.get_json()) == (400, expected)
    assert client.get("/api/v1/schedules/").get_json()["count"] == 0


def test_a_malformed_calendar_is_refused_with_the_parsers_reason(client):
    response = client.post("/api/v1/schedules/", json={"type": "ical", "name": "Refused",
                                                       "ical_file_primary": "this is not a calendar"})
    assert response.status_code == 400
    [reason] = response.get_json()["ical_file_primary"]
    assert reason.startswith("The calendar could not be read: ") and "this is not a calendar" in reason


def test_switching_between_a_url_and_an_uploaded_calendar(runtime, client, people):
    url = "http://127.0.0.1:9/calendar.ics"
    by_url = make_schedule(client, type="ical", name="Switching", ical_url_primary=url)
    row_before_switch = schedule_by_id(runtime.db, by_url["id"])

    uploaded = client.put(f"/api/v1/schedules/{by_url['id']}/", json={"ical_file_primary": around_now("alice")})
    assert uploaded.status_code == 200
    assert uploaded.get_json()["ical_url_primary"] is None and uploaded.get_json()["on_call_now"] == [people["alice"]]

    # A fetch of the old URL that was still running when the text came in changes nothing.
    late = refresh_calendar(runtime.config, row_before_switch, "primary", url,
                            fetch=lambda _: around_now("bob").encode())
    assert late is None
    runtime.catch_up()
    assert client.get(f"/api/v1/schedules/{by_url['id']}/").get_json()["on_call_now"] == [people["alice"]]

    # Back to a URL: the uploaded copy no longer counts once that URL's calendar is fetched.
    back = client.patch(f"/api/v1/schedules/{by_url['id']}/", json={"ical_url_primary": url})
    assert back.status_code == 200 and back.get_json()["ical_url_primary"] == url
    row = schedule_by_id(runtime.db, by_url["id"])
    assert refresh_calendar(runtime.config, row, "primary", url, fetch=lambda _: around_now("bob").encode())
    runtime.catch_up()
    assert client.get(f"/api/v1/schedules/{by_url['id']}/").get_json()["on_call_now"] == [people["bob"]]


def test_a_users_export_token_opens_their_shifts_in_every_schedule(runtime, app, client, people):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    daily = make_shift(client, name="daily", type="rolling_users", start=wall_clock(now - timedelta(days=3)),
                       duration=86400, frequency="daily", rolling_users=[[people["alice"]], [people["bob"]]],
                       start_rotation_from_user_index=0)
    make_schedule(client, type="calendar", name="Primary", time_zone="UTC", shifts=[daily["id"]])
    make_schedule(client, type="ical", name="Secondary",
                  ical_file_primary=one_event("alice", now + timedelta(days=40), now + timedelta(days=41)).decode())
    make_schedule(client, type="ical", name="Someone else's", ical_file_primary=around_now("carol"))
    base = f"/api/v1/users/{people['alice']}/schedule_export"

    assert client.get(base).status_code == 404  # no token yet
    assert client.delete(base).status_code == 404
    created = client.post(base)
    assert created.status_code == 201
    body = created.get_json()
    assert set(body) == {"token", "created_at", "export_url"}
    assert body["export_url"] == f"http://tocsin.test{base}?token={body['token']}"
    again = client.post(base)
    assert (again.status_code, again.get_json()) == (409, {"detail": "Schedule export token for user already exists"})
    status = client.get(base)
    assert (status.status_code, status.get_json()) == (
        200, {"created_at": body["created_at"], "revoked_at": None, "active": True})

    anonymous = app.test_client()  # a calendar app: no Authorization header
    feed = anonymous.get(f"{base}?token={body['token']}")
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"
    parsed = icalendar.Calendar.from_ical(feed.data)
    assert str(parsed["X-WR-CALNAME"]) == "On-Call Schedule for alice"
    summaries = [str(e["SUMMARY"]) for e in recurring_ical_events.of(parsed).between(now - timedelta(days=30),
                                                                                      now + timedelta(days=200))]
    assert summaries.count("Secondary: alice") == 1
    # Every other day from the rotation's start 3 days ago to 6 months ahead.
    assert 90 <= summaries.count("Primary: alice") <= 95
    assert set(summaries) == {"Primary: alice", "Secondary: alice"}  # nobody else's shifts

    assert anonymous.get(base).status_code == 403  # neither an export token nor an API token
    assert anonymous.get(f"{base}?token=wrong").status_code == 403
    assert anonymous.get(f"/api/v1/users/{people['bob']}/schedule_export?token={body['token']}").status_code == 403

    assert client.delete(base).status_code == 204
    assert anonymous.get(f"{base}?token={body['token']}").status_code == 403  # revoked at once
    assert client.get(base).status_code == 404
    renewed = client.post(base).get_json()
    assert anonymous.get(f"{base}?token={renewed['token']}").status_code == 200
    assert anonymous.get(f"{base}?token={body['token']}").status_code == 403

    client.delete(f"/api/v1/users/{people['alice']}/")  # a deleted user's feed closes
    assert anonymous.get(f"{base}?token={renewed['token']}").status_code == 403

    runtime.catch_up()
    tokens = runtime.db.query("SELECT * FROM user_schedule_export_tokens ORDER BY user_id")
    runtime.rebuild_read_models()
    assert runtime.db.query("SELECT * FROM user_schedule_export_tokens ORDER BY user_id") == tokens


def test_users_manage_their_own_export_token_and_admins_anyones(runtime, app, client, people):
    carol = app.test_client()
    carol.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, "carol's token", username="carol")
    victor = app.test_client()
    victor.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, "victor's token", username="victor")

    own = carol.post(f"/api/v1/users/{people['carol']}/schedule_export")
    assert own.status_code == 201
    assert carol.get("/api/v1/users/current/schedule_export").get_json()["active"] is True
    denied = {"detail": "You do not have permission to perform this action."}
    for method in ("get", "post", "delete"):
        response = getattr(victor, method)(f"/api/v1/users/{people['carol']}/schedule_export")
        assert (response.status_code, response.get_json()) == (403, denied)
    assert victor.post(f"/api/v1/users/{people['victor']}/schedule_export").status_code == 201  # a viewer's own
    assert client.delete(f"/api/v1/users/{people['carol']}/schedule_export").status_code == 204  # an admin
    assert client.get("/api/v1/users/U0000000000/schedule_export").status_code == 404


def test_every_schedule_answer_says_who_is_on_call_and_what_the_next_30_days_lack(client, people):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    tomorrow = make_shift(client, name="tomorrow", type="single_event", start=wall_clock(now + timedelta(days=1)),
                          duration=86400, users=[people["alice"]])
    viewers_only = make_shift(client, name="viewers only", type="single_event",
                              start=wall_clock(now + timedelta(days=3)), duration=3600, users=[people["victor"]])
    created = make_schedule(client, type="calendar", name="Patchy", time_zone="UTC",
                            shifts=[tomorrow["id"], viewers_only["id"]])
    listed = client.get("/api/v1/schedules/").get_json()["results"][0]
    fetched = client.get(f"/api/v1/schedules/{created['id']}/").get_json()
    updated = client.put(f"/api/v1/schedules/{created['id']}/", json={"name": "Still patchy"}).get_json()
    for answer in (created, listed, fetched, updated):
        assert answer["on_call_now"] == []
        assert answer["has_gaps"] is True
        assert len(answer["gaps"]) == 2
        assert answer["gaps"][0]["end"] == f"{now + timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"
        assert answer["gaps"][1]["start"] == f"{now + timedelta(days=2):%Y-%m-%dT%H:%M:%SZ}"
        assert answer["empty_shifts"] == [{"shift_id": viewers_only["id"],
                                           "start": f"{now + timedelta(days=3):%Y-%m-%dT%H:%M:%SZ}",
                                           "end": f"{now + timedelta(days=3, hours=1):%Y-%m-%dT%H:%M:%SZ}"}]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'tocsin_schedule_gap_seconds{{schedule="{created["id"]}"}} {29 * 86400}' in metrics
    assert f'tocsin_schedule_empty_shifts{{schedule="{created["id"]}"}} 1' in metrics


@pytest.fixture
def documented_app(app, monkeypatch):
    """The app whose OpenAPI document describes schedules, shifts and the iCal feeds (added here
    until the document's builder calls their ``add_to_spec`` itself)."""
    from web.api import on_call_shifts, openapi, schedules

    openapi._document.cache_clear()
    if "/api/v1/schedules/" not in openapi.build_spec()["paths"]:
        original = openapi._add_routes_and_escalation

        def with_schedules(spec):
            original(spec)
            schedules.add_to_spec(spec)
            on_call_shifts.add_to_spec(spec)

        monkeypatch.setattr(openapi, "_add_routes_and_escalation", with_schedules)
    yield app
    openapi._document.cache_clear()


@pytest.mark.timeout(600)
def test_the_openapi_document_describes_schedules_shifts_and_feeds_as_they_answer(
        runtime, documented_app, admin_token, client, people):
    import openapi_spec_validator
    import schemathesis

    from tests.integration.test_api_schema_fuzz import fuzz

    document = client.get("/api/v1/openapi.json").get_json()
    openapi_spec_validator.validate(document)
    paths = document["paths"]
    assert set(paths["/api/v1/schedules/{id}/"]) >= {"get", "put", "patch", "delete"}
    assert set(paths["/api/v1/users/{id}/schedule_export"]) >= {"get", "post", "delete"}
    assert "ical_file_primary" in document["components"]["schemas"]["ScheduleWrite"]["properties"]

    shift = make_shift(client, name="fuzzed", type="single_event", start=wall_clock(datetime.now(UTC)),
                       duration=3600, users=[people["alice"]])
    schedule = make_schedule(client, type="calendar", name="Fuzzed", time_zone="UTC", shifts=[shift["id"]])
    real_ids = {"/api/v1/schedules/": schedule["id"], "/api/v1/on_call_shifts/": shift["id"],
                "/api/v1/users/": people["alice"]}
    api_schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", documented_app)
    operations = [result.ok() for result in api_schema.get_all_operations()
                  if result.ok().path.startswith(("/api/v1/schedules", "/api/v1/on_call_shifts",
                                                  "/api/v1/users/{id}/schedule_export"))]
    assert len(operations) == 17
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            fuzz(operation, admin_token, mode)
            real_id = next((i for prefix, i in real_ids.items() if operation.path.startswith(f"{prefix}{{id}}")), None)
            if real_id is not None:
                fuzz(operation, admin_token, mode, {"id": real_id})


def final(client, schedule_id: str, start: datetime, end: datetime) -> list[tuple[str, str, str]]:
    window = f"?start_date={start:%Y-%m-%dT%H:%M}&end_date={end:%Y-%m-%dT%H:%M}"
    answer = client.get(f"/api/v1/schedules/{schedule_id}/final_shifts{window}").get_json()
    return [(s["user_username"], s["shift_start"], s["shift_end"]) for s in answer["results"]]


def test_editing_a_started_rotation_of_a_web_schedule_keeps_its_past_and_counts_from_now(client, people):
    """OnCall's web rotations: an edit after the rotation started applies from now on (the
    rotation keeps its order, and the occurrence in progress changes hands now); deleting it
    ends it now. A calendar schedule's shift is edited in place, past included, as OnCall's
    public API does."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rotation = {"type": "rolling_users", "start": wall_clock(midnight - timedelta(days=10)), "duration": 86400,
                "frequency": "daily", "rolling_users": [[people["alice"]], [people["bob"]]],
                "start_rotation_from_user_index": 0}
    web_shift = make_shift(client, name="web rotation", **rotation)
    api_shift = make_shift(client, name="api rotation", **rotation)
    web = make_schedule(client, type="web", name="Web", time_zone="UTC", shifts=[web_shift["id"]])
    api = make_schedule(client, type="calendar", name="API", time_zone="UTC", shifts=[api_shift["id"]])
    window = (midnight - timedelta(days=10), midnight + timedelta(days=3))
    before = final(client, web["id"], *window)
    assert final(client, api["id"], *window) == before
    assert [user for user, _, _ in before] == ["alice", "bob"] * 6 + ["alice"]  # 10 days back is even: alice today
    assert client.get(f"/api/v1/schedules/{web['id']}/").get_json()["on_call_now"] == [people["alice"]]

    edited = client.patch(f"/api/v1/on_call_shifts/{web_shift['id']}/",
                          json={"rolling_users": [[people["carol"]], [people["bob"]]]}).get_json()
    cut = edited["rotation_start"] + "Z"
    assert midnight.strftime("%Y-%m-%dT%H:%M:%S") < edited["rotation_start"]  # from now, not from the start
    assert edited["rolling_users"] == [[people["carol"]], [people["bob"]]]
    after = final(client, web["id"], *window)
    assert after[:10] == before[:10]  # the past, as it was
    assert ("alice", before[10][1], cut) in after  # today's shift changes hands now, with no gap
    assert ("carol", cut, before[10][2]) in after
    assert [user for user, start, _ in after if start >= cut] == ["carol", "bob", "carol"]  # the order is kept
    assert client.get(f"/api/v1/schedules/{web['id']}/").get_json()["on_call_now"] == [people["carol"]]
    renamed = client.patch(f"/api/v1/on_call_shifts/{web_shift['id']}/", json={"name": "renamed"}).get_json()
    assert renamed["rotation_start"] == edited["rotation_start"] and final(client, web["id"], *window) == after

    client.patch(f"/api/v1/on_call_shifts/{api_shift['id']}/", json={"rolling_users": [[people["carol"]], [people["bob"]]]})
    rewritten = final(client, api["id"], *window)
    assert [user for user, _, _ in rewritten] == ["carol", "bob"] * 6 + ["carol"]  # past included

    assert client.delete(f"/api/v1/on_call_shifts/{web_shift['id']}/").status_code == 204
    ended = client.get(f"/api/v1/on_call_shifts/{web_shift['id']}/").get_json()
    assert ended["until"] >= edited["rotation_start"]
    remaining = final(client, web["id"], *window)
    assert remaining[:11] == after[:11] and remaining[-1][2] == ended["until"] + "Z"
    assert client.get(f"/api/v1/schedules/{web['id']}/").get_json()["on_call_now"] == []
    assert client.delete(f"/api/v1/on_call_shifts/{api_shift['id']}/").status_code == 204
    assert client.get(f"/api/v1/on_call_shifts/{api_shift['id']}/").status_code == 404
