"""Schedules and on-call shifts through the API on both backends: OnCall's shapes and texts,
who is on call now, final shifts, the iCal export, ical schedules fetched by URL from a local
server, answers for past instants from the log, and read models that a replay rebuilds."""

from __future__ import annotations

import http.server
import threading
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
import recurring_ical_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.schedules import on_call_from_log, refresh_calendars
from tests.conftest import eventually
from tocsin.cli import create_token

SHIFT_FIELDS_ROLLING = {
    "id", "team_id", "name", "type", "time_zone", "level", "start", "duration", "rotation_start", "frequency",
    "interval", "until", "week_start", "by_day", "by_month", "by_monthday", "rolling_users",
    "start_rotation_from_user_index",
}


def make_user(client, username: str, role: str = "editor") -> str:
    response = client.post("/api/v1/users/", json={"username": username, "email": f"{username}@example.com",
                                                   "role": role})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def make_shift(client, **fields) -> dict:
    response = client.post("/api/v1/on_call_shifts/", json=fields)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def make_schedule(client, **fields) -> dict:
    response = client.post("/api/v1/schedules/", json=fields)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def people(client) -> dict[str, str]:
    return {name: make_user(client, name, role) for name, role in
            (("alice", "editor"), ("bob", "admin"), ("carol", "editor"), ("victor", "viewer"))}


def wall_clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_a_berlin_rotation_through_the_api_hands_over_at_nine_local_time_and_overrides_win_now(client, people):
    rotation = make_shift(
        client, name="primary", type="rolling_users", start="2026-03-02T09:00:00", duration=7 * 86400,
        time_zone="Europe/Berlin", frequency="weekly", week_start="MO",
        rolling_users=[[people["alice"]], [people["bob"]]], start_rotation_from_user_index=0,
    )
    assert set(rotation) == SHIFT_FIELDS_ROLLING
    assert (rotation["interval"], rotation["rotation_start"], rotation["by_day"]) == (1, "2026-03-02T09:00:00", None)
    schedule = make_schedule(client, type="calendar", name="Primary", time_zone="Europe/Berlin",
                             shifts=[rotation["id"]])
    assert schedule["id"].startswith("S") and schedule["shifts"] == [rotation["id"]]
    assert schedule["slack"] == {"channel_id": None, "user_group_id": None}
    assert schedule["on_call_now"] in ([people["alice"]], [people["bob"]])
    assert schedule["has_gaps"] is False and schedule["empty_shifts"] == []

    response = client.get(f"/api/v1/schedules/{schedule['id']}/final_shifts?start_date=2026-03-20&end_date=2026-04-10")
    body = response.get_json()
    assert response.status_code == 200
    assert {k: body[k] for k in ("next", "previous", "current_page_number", "page_size", "total_pages")} == {
        "next": None, "previous": None, "current_page_number": 1, "page_size": 50, "total_pages": 1}
    assert [(r["user_username"], r["shift_start"], r["shift_end"]) for r in body["results"]] == [
        ("alice", "2026-03-20T00:00:00Z", "2026-03-23T08:00:00Z"),
        ("bob", "2026-03-23T08:00:00Z", "2026-03-30T07:00:00Z"),  # 09:00 CET, then 09:00 CEST
        ("alice", "2026-03-30T07:00:00Z", "2026-04-06T07:00:00Z"),
        ("bob", "2026-04-06T07:00:00Z", "2026-04-10T00:00:00Z"),
    ]
    assert body["count"] == 4 and body["results"][0]["user_email"] == "alice@example.com"

    now = datetime.now(UTC)
    viewer_cover = make_shift(client, name="viewer cover", type="override", start=wall_clock(now - timedelta(hours=1)),
                              duration=7200, users=[people["victor"]])
    cover = make_shift(client, name="cover", type="override", start=wall_clock(now - timedelta(hours=1)),
                       duration=7200, users=[people["carol"]])
    assert "level" not in cover and "frequency" not in cover and cover["users"] == [people["carol"]]
    refused = client.put(f"/api/v1/schedules/{schedule['id']}/", json={"shifts": [rotation["id"], cover["id"]]})
    assert (refused.status_code, refused.get_json()) == (
        400, {"detail": "Shifts of type override are not supported in this schedule"})
    web = make_schedule(client, type="web", name="Web", shifts=[rotation["id"], viewer_cover["id"]])
    assert web["time_zone"] == "UTC" and web["on_call_now"] == schedule["on_call_now"]  # a viewer covers no one
    assert [e["shift_id"] for e in web["empty_shifts"]] == [viewer_cover["id"]]
    web = make_schedule(client, type="web", name="Web 2", shifts=[rotation["id"], cover["id"]])
    assert web["on_call_now"] == [people["carol"]]
    refused = client.patch(f"/api/v1/schedules/{web['id']}/", json={"name": "x"})
    assert (refused.status_code, refused.get_json()) == (400, {"detail": "Web schedule update is not enabled through API"})

    listed = client.get(f"/api/v1/on_call_shifts/?schedule_id={web['id']}").get_json()
    assert sorted(s["id"] for s in listed["results"]) == sorted([rotation["id"], cover["id"]])
    assert client.get("/api/v1/schedules/?name=Primary").get_json()["count"] == 1

    assert client.delete(f"/api/v1/on_call_shifts/{cover['id']}/").status_code == 204
    assert client.get(f"/api/v1/schedules/{web['id']}/").get_json()["on_call_now"] == schedule["on_call_now"]
    assert client.delete(f"/api/v1/schedules/{web['id']}/").status_code == 204
    assert client.get(f"/api/v1/schedules/{web['id']}/").status_code == 404


BASE_SHIFT = {"name": "s", "type": "recurrent_event", "start": "2026-01-01T09:00:00", "duration": 3600,
              "frequency": "daily", "users": []}


@pytest.mark.parametrize("change, status, body", [
    ({"type": "bogus"}, 400, {"detail": "Invalid shift type"}),
    ({"frequency": None}, 400, {"detail": "Field 'frequency' is required for this on-call shift type"}),
    ({"frequency": "weekly"}, 400, {"detail": "Field 'week_start' is required for frequency type 'weekly'"}),
    ({"frequency": "yearly"}, 400, {"detail": "Invalid frequency type"}),
    ({"week_start": "XX"}, 400, {"detail": "Invalid day format for week start field. "
                                           "Should be one of the following: 'MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'"}),
    ({"start": "2026-01-01 09:00"}, 400, {"detail": "Invalid datetime format, should be \"yyyy-mm-dd'T'hh:mm:ss\""}),
    ({"until": "tomorrow"}, 400, {"detail": "Invalid datetime format, should be \"yyyy-mm-dd'T'hh:mm:ss\""}),
    ({"start": "9999-12-31T23:00:00"}, 400, {"detail": "Dates must be between the years 1970 and 9000"}),
    ({"until": "0001-01-01T00:00:00"}, 400, {"detail": "Dates must be between the years 1970 and 9000"}),
    ({"interval": 0}, 400, {"detail": "Invalid value for interval"}),
    ({"interval": 10**30}, 400, {"detail": "Invalid value for interval"}),
    ({"by_day": ["XX"]}, 400, {"detail": "Invalid day value in by_day field. Valid values: 'MO', 'TU', 'WE', 'TH', "
                                         "'FR', 'SA', 'SU'"}),
    ({"by_month": [13]}, 400, {"detail": "Invalid month value in by_month field. Valid values: from 1 to 12"}),
    ({"by_monthday": [0]}, 400, {"detail": "Invalid monthday value in by_monthday field. "
                                           "Valid values: from 1 to 31 and from -31 to -1"}),
    ({"type": "rolling_users", "rolling_users": []}, 400,
     {"detail": "Field 'start_rotation_from_user_index' is required for this on-call shift type"}),
    ({"type": "rolling_users", "start_rotation_from_user_index": 0, "by_monthday": [1]}, 400,
     {"detail": "Day limits are temporarily disabled for on-call shifts with type 'rolling_users' and frequency 'daily'"}),
    ({"type": "rolling_users", "start_rotation_from_user_index": 0, "by_day": ["MO"], "interval": 2}, 400,
     {"detail": "Interval must be less than or equal to the number of selected days"}),
    ({"name": "nul\x00name"}, 400, {"name": ["Null characters are not allowed."]}),
    ({"name": "x" * 201}, 400, {"name": ["Ensure this field has no more than 200 characters."]}),
    ({"duration": 10**40}, 400, {"duration": ["Ensure this value is between 1 and 31622400."]}),
    ({"duration": "forever"}, 400, {"duration": ["A valid integer is required."]}),
    ({"time_zone": "Mars/Olympus"}, 400, {"time_zone": ["Invalid timezone"]}),
    ({"users": ["U-nobody"]}, 400, {"users": ['Invalid pk "U-nobody" - object does not exist.']}),
    ({"team_id": "T-nobody"}, 400, {"team_id": ['Invalid pk "T-nobody" - object does not exist.']}),
    ({"level": "high"}, 400, {"level": ["A valid integer is required."]}),
])
def test_a_bad_shift_is_refused_with_oncalls_text(client, change, status, body):
    response = client.post("/api/v1/on_call_shifts/", json={**BASE_SHIFT, **change})
    assert (response.status_code, response.get_json()) == (status, body)


def test_hostile_bodies_get_a_clear_400(client):
    deep = "[" * 100_000 + "]" * 100_000
    for data in (deep, "not json", "[]", '"x"'):
        response = client.post("/api/v1/on_call_shifts/", data=data, content_type="application/json")
        assert (response.status_code, response.get_json()) == (400, {"detail": "A JSON object is expected."}), data[:10]
        response = client.post("/api/v1/schedules/", data=data, content_type="application/json")
        assert response.status_code == 400
    make_shift(client, **BASE_SHIFT)
    assert client.post("/api/v1/on_call_shifts/", json=BASE_SHIFT).get_json() == {
        "detail": "On-call shift with this name already exists"}


def test_schedule_validation_and_final_shifts_parameters(client):
    cases = [
        ({"name": "x"}, {"type": ["This field is required."]}),
        ({"type": "nope", "name": "x"}, {"detail": "Invalid schedule type"}),
        ({"type": "calendar", "name": "x"}, {"time_zone": ["This field is required."]}),
        ({"type": "calendar", "name": "x", "time_zone": "Nowhere/City"}, {"time_zone": ["Invalid timezone"]}),
        ({"type": "ical", "name": "x"}, {"ical_url_primary": ["This field is required."]}),
        ({"type": "ical", "name": "x", "ical_url_primary": "file:///etc/passwd"}, {"ical_url_primary": ["Enter a valid URL."]}),
        ({"type": "web", "name": "x", "shifts": ["O-nothing"]}, {"shifts": ['Invalid pk "O-nothing" - object does not exist.']}),
        ({"type": "web"}, {"name": ["This field is required."]}),
    ]
    for body, expected in cases:
        response = client.post("/api/v1/schedules/", json=body)
        assert (response.status_code, response.get_json()) == (400, expected), body
    schedule = make_schedule(client, type="web", name="Empty")
    assert schedule["on_call_now"] == [] and schedule["has_gaps"] is True
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'tocsin_schedule_gap_seconds{{schedule="{schedule["id"]}"}} {30 * 86400}' in metrics
    assert f'tocsin_schedule_empty_shifts{{schedule="{schedule["id"]}"}} 0' in metrics
    base = f"/api/v1/schedules/{schedule['id']}/final_shifts"
    for query, expected in [
        ("", {"start_date": ["This field is required."]}),
        ("?start_date=2026-01-01", {"end_date": ["This field is required."]}),
        ("?start_date=01/01/2026&end_date=2026-02-01",
         {"start_date": ["Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm, YYYY-MM-DD."]}),
        ("?start_date=2026-02-01&end_date=2026-01-01",
         {"non_field_errors": ["start_date must be less than or equal to end_date"]}),
        ("?start_date=2026-01-01&end_date=2027-01-02",
         {"non_field_errors": ["The difference between start_date and end_date must be less than one year (365 days)"]}),
        ("?start_date=0001-01-01&end_date=0001-02-01",
         {"start_date": ["Dates must be between the years 1970 and 9000."]}),
        ("?start_date=99999-01-01&end_date=2027-01-02",
         {"start_date": ["Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm, YYYY-MM-DD."]}),
    ]:
        response = client.get(base + query)
        assert (response.status_code, response.get_json()) == (400, expected), query
    ok = client.get(base + "?start_date=2026-01-01T10:30&end_date=2027-01-01T10:30")
    assert ok.status_code == 200 and ok.get_json()["results"] == []


def test_only_admins_change_schedules_and_viewers_read_them(runtime, app, client):
    viewer = app.test_client()
    viewer.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, "reader", "viewer")
    denied = viewer.post("/api/v1/schedules/", json={"type": "web", "name": "x"})
    assert denied.status_code == 403
    assert viewer.post("/api/v1/on_call_shifts/", json=BASE_SHIFT).status_code == 403
    make_schedule(client, type="web", name="Readable")
    assert viewer.get("/api/v1/schedules/").get_json()["count"] == 1


class CalendarServer:
    """A local HTTP server whose answer a test sets: a body, a status, or nothing (stopped)."""

    def __init__(self):
        self.body, self.status = b"", 200
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(server.status)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/calendar.ics"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture
def calendar_server():
    server = CalendarServer()
    yield server
    server.stop()


def one_event(summary: str, start: datetime, end: datetime) -> bytes:
    stamp = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:x\r\n"
        f"SUMMARY:{summary}\r\nDTSTART:{start.strftime(stamp)}\r\nDTEND:{end.strftime(stamp)}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def test_an_ical_schedule_by_url_refreshes_keeps_the_last_good_copy_and_says_what_failed(
        runtime, client, people, calendar_server):
    now = datetime.now(UTC)
    calendar_server.body = one_event("alice", now - timedelta(hours=1), now + timedelta(hours=1))
    schedule = make_schedule(client, type="ical", name="From a calendar", ical_url_primary=calendar_server.url)

    def refresh_and_read():
        refresh_calendars(runtime.db, runtime.config)
        runtime.catch_up()
        return client.get(f"/api/v1/schedules/{schedule['id']}/").get_json()

    fetched = refresh_and_read()
    assert fetched["on_call_now"] == [people["alice"]] and fetched["ical_error"] is None
    assert fetched["ical_last_fetched_at"]

    calendar_server.body = one_event("[L1] BOB@example.com mallory", now - timedelta(hours=1), now + timedelta(hours=1))
    by_email = refresh_and_read()
    assert by_email["on_call_now"] == [people["bob"]] and by_email["missing_users"] == ["mallory"]

    calendar_server.body = b"this is not a calendar"
    broken = refresh_and_read()
    assert broken["on_call_now"] == [people["bob"]]  # the last good copy stays
    assert broken["ical_error"].startswith("primary: The calendar could not be read")

    calendar_server.status, calendar_server.body = 500, b"oops"
    assert refresh_and_read()["ical_error"] == "primary: The calendar server answered 500 Internal Server Error"

    calendar_server.status, calendar_server.body = 200, b"BEGIN:VCALENDAR\r\n" + b"X" * (6 * 1024 * 1024)
    too_big = refresh_and_read()
    assert too_big["ical_error"] == f"primary: The calendar is larger than {5 * 1024 * 1024} bytes"
    assert too_big["on_call_now"] == [people["bob"]]

    calendar_server.stop()
    down = refresh_and_read()
    assert down["ical_error"].startswith("primary: The calendar server could not be reached")
    assert down["on_call_now"] == [people["bob"]]
    positions = runtime.config.recorder.max_notification_id()
    refresh_and_read()  # the same failure again records nothing: a refresh every 10 minutes keeps the log small
    assert runtime.config.recorder.max_notification_id() == positions


def test_the_running_service_fetches_a_new_ical_schedule_by_itself(client, people, calendar_server):
    """No request waits for a calendar: the refresh job beside the ticker fetches a new schedule
    within seconds, then every 10 minutes."""
    now = datetime.now(UTC)
    calendar_server.body = one_event("carol", now - timedelta(hours=1), now + timedelta(hours=1))
    created = make_schedule(client, type="ical", name="Fetched in the background", ical_url_primary=calendar_server.url)
    assert created["on_call_now"] == [] and created["ical_last_fetched_at"] is None
    eventually(lambda: client.get(f"/api/v1/schedules/{created['id']}/").get_json()["on_call_now"] == [people["carol"]],
               timeout=15, describe="the background fetch")


def test_the_export_is_a_subscribable_calendar_that_imports_to_the_same_final_shifts(
        runtime, app, client, people, calendar_server):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rotation = make_shift(
        client, name="daily", type="rolling_users", start=wall_clock(now - timedelta(days=20)), duration=86400,
        frequency="daily", rolling_users=[[people["alice"]], [people["bob"], people["carol"]]],
        start_rotation_from_user_index=1,
    )
    second = make_shift(client, name="evenings", type="recurrent_event", level=1,
                        start=wall_clock(now - timedelta(days=20, hours=6)), duration=3 * 3600, frequency="daily",
                        interval=2, users=[people["carol"]])
    created = make_schedule(client, type="calendar", name="Exported", time_zone="America/New_York",
                            shifts=[rotation["id"], second["id"]])
    anonymous = app.test_client()
    assert anonymous.get(f"/api/v1/schedules/{created['id']}/export").status_code == 403
    assert anonymous.get(f"/api/v1/schedules/{created['id']}/export?token=wrong").status_code == 403
    export_path = created["export_url"].removeprefix("http://tocsin.test")
    response = anonymous.get(export_path)
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    assert client.get(f"/api/v1/schedules/{created['id']}/export").status_code == 200  # an API token also works

    parsed = icalendar.Calendar.from_ical(response.data)
    start, end = now - timedelta(days=10), now + timedelta(days=30)
    expanded = recurring_ical_events.of(parsed).between(start, end)
    assert {str(e["SUMMARY"]) for e in expanded} == {"alice", "bob", "carol"}

    calendar_server.body = response.data
    imported = make_schedule(client, type="ical", name="Imported", ical_url_primary=calendar_server.url)
    refresh_calendars(runtime.db, runtime.config)
    runtime.catch_up()
    window = f"?start_date={start:%Y-%m-%dT%H:%M}&end_date={end:%Y-%m-%dT%H:%M}"
    original = client.get(f"/api/v1/schedules/{created['id']}/final_shifts{window}").get_json()
    again = client.get(f"/api/v1/schedules/{imported['id']}/final_shifts{window}").get_json()
    assert original["count"] > 30 and again == original


def test_who_was_on_call_at_a_past_instant_comes_from_the_log_and_replay_rebuilds_the_read_models(
        runtime, client, people):
    now = datetime.now(UTC)
    shift = make_shift(client, name="always", type="single_event", start=wall_clock(now - timedelta(days=1)),
                       duration=10 * 86400, users=[people["alice"]])
    schedule = make_schedule(client, type="calendar", name="History", time_zone="UTC", shifts=[shift["id"]])
    before = datetime.now(UTC)
    assert on_call_from_log(runtime.db, runtime.config, schedule["id"], before) == {people["alice"]}

    changed = client.patch(f"/api/v1/on_call_shifts/{shift['id']}/", json={"users": [people["carol"]]})
    assert changed.status_code == 200 and changed.get_json()["users"] == [people["carol"]]
    client.patch(f"/api/v1/users/{people['alice']}/", json={"role": "viewer"})
    assert client.get(f"/api/v1/schedules/{schedule['id']}/").get_json()["on_call_now"] == [people["carol"]]
    after = datetime.now(UTC)
    assert on_call_from_log(runtime.db, runtime.config, schedule["id"], before) == {people["alice"]}
    assert on_call_from_log(runtime.db, runtime.config, schedule["id"], after) == {people["carol"]}
    client.delete(f"/api/v1/schedules/{schedule['id']}/")
    assert on_call_from_log(runtime.db, runtime.config, schedule["id"], before) == {people["alice"]}
    assert on_call_from_log(runtime.db, runtime.config, schedule["id"], datetime.now(UTC)) == frozenset()

    make_schedule(client, type="web", name="Kept", shifts=[shift["id"]])
    runtime.catch_up()

    def tables():
        return {t: runtime.db.query(f"SELECT * FROM {t} ORDER BY id") for t in ("schedules", "on_call_shifts")}

    live = tables()
    assert len(live["schedules"]) == 2 and len(live["on_call_shifts"]) == 1
    runtime.rebuild_read_models()
    assert tables() == live


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False)
    | st.text(max_size=30) | st.sampled_from(["2026-01-01T09:00:00", "weekly", "MO", "UTC", "Europe/Berlin",
                                             "rolling_users", "override", "daily", "\x00", "\ud800"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
SHIFT_KEYS = ["name", "type", "team_id", "time_zone", "level", "start", "duration", "rotation_start", "frequency",
              "interval", "until", "week_start", "by_day", "by_month", "by_monthday", "users", "rolling_users",
              "start_rotation_from_user_index"]
SCHEDULE_KEYS = ["name", "type", "team_id", "time_zone", "shifts", "ical_url_primary", "ical_url_overrides",
                 "enable_web_overrides"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(shift=st.dictionaries(st.sampled_from(SHIFT_KEYS), json_values, max_size=10),
       schedule=st.dictionaries(st.sampled_from(SCHEDULE_KEYS), json_values, max_size=6))
def test_random_shift_and_schedule_bodies_get_an_answer_never_a_server_error(client, shift, schedule):
    base = {"name": "fuzz", "type": "rolling_users", "start": "2026-01-01T09:00:00", "duration": 3600,
            "frequency": "daily", "start_rotation_from_user_index": 0}
    response = client.post("/api/v1/on_call_shifts/", json={**base, **shift})
    assert response.status_code in (201, 400), (shift, response.get_json())
    if response.status_code == 201:
        created = response.get_json()
        assert client.get(f"/api/v1/on_call_shifts/{created['id']}/").status_code == 200
        schedule = {**schedule, "shifts": [created["id"]]} if schedule.get("type") in ("web", "calendar") else schedule
        client.delete(f"/api/v1/on_call_shifts/{created['id']}/")
    response = client.post("/api/v1/schedules/", json=schedule)
    assert response.status_code in (201, 400), (schedule, response.get_json())
