"""Editing a rotation that already started (OnCall's web rotations): the version before the edit
keeps the past, the edit counts from the new rotation_start with the occurrence in progress, and
a deleted started rotation ends now; in wall-clock time, across a daylight-saving change."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from domain.schedules import Directory, Schedule, ScheduleUser, final_shifts
from domain.schedules.aggregates import (
    MAX_EARLIER_VERSIONS,
    edited_from_now,
    ended_now,
    shift_versions,
)

BERLIN = ZoneInfo("Europe/Berlin")
USERS = Directory(ScheduleUser(name, name) for name in ("alice", "bob", "carol"))
WEEKLY = {
    "name": "primary", "type": "rolling_users", "team_id": None, "time_zone": "Europe/Berlin", "level": 0,
    "start": "2026-03-02T09:00:00", "duration": 7 * 86400, "rotation_start": "2026-03-02T09:00:00",
    "frequency": "weekly", "interval": 1, "until": None, "week_start": "MO", "by_day": [], "by_month": [],
    "by_monthday": [], "users": [], "rolling_users": [["alice"], ["bob"]], "start_rotation_from_user_index": 0,
}


def shifts_of(spec: dict, start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    schedule = Schedule("UTC", tuple(shift_versions("O1", spec)))
    return [(s.user_id, s.start.astimezone(BERLIN), s.end.astimezone(BERLIN))
            for s in final_shifts(schedule, start, end, USERS)]


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def test_an_edit_mid_week_keeps_the_past_and_hands_the_week_in_progress_over_at_once():
    # Wednesday 1 April 2026, 15:30 in Berlin, three days after the change to summer time.
    now_local = datetime(2026, 4, 1, 15, 30, 12, 999)
    edited = edited_from_now(WEEKLY, {**WEEKLY, "rolling_users": [["carol"], ["bob"]]}, now_local)
    assert edited["rotation_start"] == "2026-04-01T15:30:12" and edited["resumes"] is True
    assert edited["previous"] == [{**WEEKLY, "until": "2026-04-01T15:30:12"}]

    window = (berlin(2026, 3, 2, 9), berlin(2026, 4, 20, 9))
    before = shifts_of(WEEKLY, *window)
    after = shifts_of(edited, *window)
    cut = berlin(2026, 4, 1, 15, 30, 12)
    assert after[:4] == before[:4]  # the weeks before, as they were (09:00 across the change)
    assert after[4:] == [
        ("alice", berlin(2026, 3, 30, 9), cut),  # the week in progress changes hands now
        ("carol", cut, berlin(2026, 4, 6, 9)),
        ("bob", berlin(2026, 4, 6, 9), berlin(2026, 4, 13, 9)),  # the order goes on
        ("carol", berlin(2026, 4, 13, 9), berlin(2026, 4, 20, 9)),
    ]


def test_a_later_rotation_start_keeps_the_old_version_until_then_and_edits_stack():
    now_local = datetime(2026, 4, 1, 12, 0)
    later = {**WEEKLY, "rolling_users": [["carol"], ["bob"]], "rotation_start": "2026-04-06T09:00:00"}
    edited = edited_from_now(WEEKLY, later, now_local)
    assert edited["rotation_start"] == "2026-04-06T09:00:00"
    assert shifts_of(edited, berlin(2026, 3, 30, 9), berlin(2026, 4, 13, 9)) == [
        ("alice", berlin(2026, 3, 30, 9), berlin(2026, 4, 6, 9)),
        ("bob", berlin(2026, 4, 6, 9), berlin(2026, 4, 13, 9)),
    ]
    again = edited_from_now(edited, {**edited, "duration": 3600, "previous": None}, datetime(2026, 4, 8, 12, 0))
    assert [version["until"] for version in again["previous"]] == ["2026-04-06T09:00:00", "2026-04-08T12:00:00"]
    assert shifts_of(again, berlin(2026, 4, 6, 9), berlin(2026, 4, 14, 9))[-2:] == [
        ("bob", berlin(2026, 4, 6, 9), berlin(2026, 4, 8, 12)),
        ("carol", berlin(2026, 4, 13, 9), berlin(2026, 4, 13, 10)),  # one hour a week from then on
    ]


def test_what_changes_in_place():
    now_local = datetime(2026, 4, 1, 12, 0)
    renamed = edited_from_now(WEEKLY, {**WEEKLY, "name": "renamed", "team_id": "T1"}, now_local)
    assert renamed == {**WEEKLY, "name": "renamed", "team_id": "T1"}
    not_started = {**WEEKLY, "start": "2026-05-04T09:00:00", "rotation_start": "2026-05-04T09:00:00"}
    assert edited_from_now(not_started, {**not_started, "duration": 3600}, now_local) == {**not_started,
                                                                                          "duration": 3600}
    single = {**WEEKLY, "type": "single_event", "frequency": None, "users": ["alice"], "rolling_users": None}
    assert edited_from_now(single, {**single, "users": ["bob"]}, now_local) == {**single, "users": ["bob"]}


def test_the_versions_kept_are_bounded():
    spec, moment = WEEKLY, datetime(2026, 4, 1)
    for day in range(MAX_EARLIER_VERSIONS + 5):
        moment += timedelta(days=1)
        spec = edited_from_now(spec, {**spec, "level": day + 1}, moment)
    assert len(spec["previous"]) == MAX_EARLIER_VERSIONS
    assert spec["previous"][-1]["level"] == MAX_EARLIER_VERSIONS + 4


def test_deleting_a_started_rotation_ends_it_now():
    now_local = datetime(2026, 4, 1, 15, 30)
    ended = ended_now(WEEKLY, now_local)
    assert ended == {**WEEKLY, "until": "2026-04-01T15:30:00"}
    assert shifts_of(ended, berlin(2026, 3, 23, 9), berlin(2026, 4, 20, 9)) == [
        ("bob", berlin(2026, 3, 23, 9), berlin(2026, 3, 30, 9)),
        ("alice", berlin(2026, 3, 30, 9), berlin(2026, 4, 1, 15, 30)),
    ]
    assert ended_now(ended, datetime(2026, 4, 2)) == ended  # already over
    assert ended_now({**WEEKLY, "rotation_start": "2026-05-04T09:00:00"}, now_local) is None  # not started: deleted
    assert ended_now({**WEEKLY, "type": "single_event"}, now_local) is None
