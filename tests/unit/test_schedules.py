"""The schedule engine: rotations across daylight-saving changes, OnCall's precedence, rolling
turns, recurrence options, gaps and empty shifts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.schedules import (
    DAILY,
    MONTHLY,
    OVERRIDE,
    RECURRENT_EVENT,
    ROLLING_USERS,
    SINGLE_EVENT,
    WEEKLY,
    Directory,
    Schedule,
    ScheduleUser,
    Shift,
    ShiftError,
    coverage,
    final_segments,
    final_shifts,
    on_call_at,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
USERS = Directory(
    [ScheduleUser(name, name, f"{name}@example.com") for name in ("alice", "bob", "carol", "dave")]
    + [ScheduleUser("victor", "victor", "victor@example.com", can_be_on_call=False)]  # a viewer
)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone, *args) -> datetime:
    return datetime(*args, tzinfo=zone)


def weekly_rotation(zone: str, groups=(("alice",), ("bob",), ("carol",)), **extra) -> Shift:
    fields = dict(
        id="rotation", type=ROLLING_USERS, start=datetime(2026, 1, 5, 9), duration=timedelta(days=7),
        time_zone=zone, rolling_users=groups, frequency=WEEKLY, week_start="MO",
    )
    fields.update(extra)
    return Shift(**fields)


# Each zone's changes in 2026 and 2027 (the Sunday of the change) and the Monday after it.
DST_CHANGES = {
    "Europe/Berlin": [datetime(2026, 3, 29), datetime(2026, 10, 25), datetime(2027, 3, 28), datetime(2027, 10, 31)],
    "America/New_York": [datetime(2026, 3, 8), datetime(2026, 11, 1), datetime(2027, 3, 14), datetime(2027, 11, 7)],
}


@pytest.mark.parametrize("zone_name", sorted(DST_CHANGES))
def test_a_weekly_rotation_hands_over_at_nine_local_time_across_every_change_of_2026_and_2027(zone_name):
    zone = ZoneInfo(zone_name)
    schedule = Schedule("UTC", (weekly_rotation(zone_name),))
    shifts = final_shifts(schedule, utc(2026, 1, 5, 12), utc(2028, 1, 3), USERS)
    handovers = [s.start for s in shifts[1:]]
    assert len(handovers) == 103  # one every Monday from 12 January 2026 to 27 December 2027
    for moment in handovers:
        wall = moment.astimezone(zone)
        assert (wall.weekday(), wall.hour, wall.minute) == (0, 9, 0), wall
    # Back to back: every shift ends when the next begins, so nobody's week is an hour short or long.
    assert all(a.end == b.start for a, b in zip(shifts, shifts[1:]))
    assert [s.user_id for s in shifts[:4]] == ["alice", "bob", "carol", "alice"]
    offsets = {m.astimezone(zone).utcoffset() for m in handovers}
    assert len(offsets) == 2  # both standard and summer time were crossed
    for change in DST_CHANGES[zone_name]:
        monday = (change + timedelta(days=1)).replace(hour=9)
        before, after = local(zone, *monday.timetuple()[:4], 0, 0) - timedelta(seconds=1), local(zone, *monday.timetuple()[:4])
        assert on_call_at(schedule, before, USERS) != on_call_at(schedule, after, USERS)
        # The Sunday of the change is an hour shorter or longer, and the shift covering it is
        # still one week of wall-clock time: 167 or 169 real hours.
        covering = next(s for s in shifts if s.start <= change.replace(tzinfo=zone) < s.end)
        assert (covering.end - covering.start) in (timedelta(hours=167), timedelta(hours=169))


def test_a_shift_over_the_missing_hour_lasts_its_duration_in_real_time():
    shift = Shift("night", SINGLE_EVENT, datetime(2026, 3, 29, 0, 30), timedelta(hours=4),
                  time_zone="Europe/Berlin", users=("alice",))
    [occurrence] = shift.occurrences(utc(2026, 3, 28), utc(2026, 3, 30))
    assert occurrence.start == local(BERLIN, 2026, 3, 29, 0, 30)
    assert occurrence.end - occurrence.start == timedelta(hours=4)
    assert occurrence.end.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 29, 5, 30)


def test_a_shift_over_the_repeated_hour_lasts_its_duration_in_real_time():
    shift = Shift("night", SINGLE_EVENT, datetime(2026, 11, 1, 0, 30), timedelta(hours=4),
                  time_zone="America/New_York", users=("alice",))
    [occurrence] = shift.occurrences(utc(2026, 10, 31), utc(2026, 11, 2))
    assert occurrence.end - occurrence.start == timedelta(hours=4)
    assert occurrence.end.astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2026, 11, 1, 3, 30)


def test_a_shift_starting_in_the_missing_hour_starts_when_the_clock_jumps_past_it():
    shift = Shift("x", SINGLE_EVENT, datetime(2027, 3, 28, 2, 30), timedelta(hours=1),
                  time_zone="Europe/Berlin", users=("alice",))
    [occurrence] = shift.occurrences(utc(2027, 3, 27), utc(2027, 3, 29))
    assert occurrence.start == utc(2027, 3, 28, 1, 30)  # 03:30 summer time


def test_a_daily_rotation_keeps_its_wall_clock_day_on_the_short_and_the_long_day():
    shift = Shift("daily", ROLLING_USERS, datetime(2026, 10, 24, 9), timedelta(days=1), time_zone="Europe/Berlin",
                  rolling_users=(("alice",), ("bob",)), frequency=DAILY)
    shifts = final_shifts(Schedule("UTC", (shift,)), utc(2026, 10, 24, 7), utc(2026, 10, 27, 8), USERS)
    assert [(s.user_id, s.end - s.start) for s in shifts] == [
        ("alice", timedelta(hours=25)), ("bob", timedelta(hours=24)), ("alice", timedelta(hours=24)),
    ]  # the night of 24 to 25 October has 25 hours


def test_the_shift_zone_wins_over_the_schedule_zone():
    with_zone = Shift("x", SINGLE_EVENT, datetime(2026, 6, 1, 9), timedelta(hours=1), time_zone="America/New_York",
                      users=("alice",))
    without = Shift("y", SINGLE_EVENT, datetime(2026, 6, 1, 9), timedelta(hours=1), users=("bob",))
    schedule = Schedule("Europe/Berlin", (with_zone, without))
    assert on_call_at(schedule, utc(2026, 6, 1, 7, 30), USERS) == {"bob"}
    assert on_call_at(schedule, utc(2026, 6, 1, 13, 30), USERS) == {"alice"}


# --- precedence ------------------------------------------------------------------------------


def single(id, users, start, hours, level=0, type=SINGLE_EVENT):
    return Shift(id, type, start, timedelta(hours=hours), level=level, users=tuple(users))


def test_an_override_wins_over_every_level_and_only_for_its_own_time():
    schedule = Schedule("UTC", (
        single("base", ["alice"], datetime(2026, 5, 1, 0), 24, level=5),
        single("cover", ["dave"], datetime(2026, 5, 1, 10), 2, type=OVERRIDE),
    ))
    assert on_call_at(schedule, utc(2026, 5, 1, 11), USERS) == {"dave"}
    assert on_call_at(schedule, utc(2026, 5, 1, 12), USERS) == {"alice"}
    shifts = final_shifts(schedule, utc(2026, 5, 1), utc(2026, 5, 2), USERS)
    assert [(s.user_id, s.start.hour, s.end.hour) for s in shifts] == [
        ("alice", 0, 10), ("dave", 10, 12), ("alice", 12, 0)
    ]


def test_the_highest_level_wins_and_the_same_level_is_a_union():
    schedule = Schedule("UTC", (
        single("low", ["alice"], datetime(2026, 5, 1, 0), 24, level=0),
        single("high-1", ["bob"], datetime(2026, 5, 1, 8), 8, level=2),
        single("high-2", ["carol"], datetime(2026, 5, 1, 12), 8, level=2),
    ))
    assert on_call_at(schedule, utc(2026, 5, 1, 7), USERS) == {"alice"}
    assert on_call_at(schedule, utc(2026, 5, 1, 9), USERS) == {"bob"}
    assert on_call_at(schedule, utc(2026, 5, 1, 13), USERS) == {"bob", "carol"}
    assert on_call_at(schedule, utc(2026, 5, 1, 19), USERS) == {"carol"}
    assert on_call_at(schedule, utc(2026, 5, 1, 21), USERS) == {"alice"}
    levels = [(s.start.hour, s.level) for s in final_segments(schedule, utc(2026, 5, 1), utc(2026, 5, 2), USERS)]
    assert levels == [(0, 0), (8, 2), (12, 2), (16, 2), (20, 0)]


def test_viewers_and_unknown_users_are_never_on_call_and_their_shifts_hide_nothing():
    schedule = Schedule("UTC", (
        single("base", ["alice"], datetime(2026, 5, 1, 0), 24),
        single("viewer-only", ["victor", "ghost"], datetime(2026, 5, 1, 6), 4, level=3),
        single("viewer-override", ["victor"], datetime(2026, 5, 1, 12), 2, type=OVERRIDE),
        single("mixed", ["victor", "bob"], datetime(2026, 5, 1, 16), 2, level=1),
    ))
    assert on_call_at(schedule, utc(2026, 5, 1, 7), USERS) == {"alice"}
    assert on_call_at(schedule, utc(2026, 5, 1, 13), USERS) == {"alice"}
    assert on_call_at(schedule, utc(2026, 5, 1, 17), USERS) == {"bob"}
    report = coverage(schedule, utc(2026, 5, 1), USERS, horizon=timedelta(days=1))
    assert [o.source for o in report.empty_shifts] == ["viewer-only", "viewer-override"]


def test_gaps_are_the_times_nobody_is_on_call():
    schedule = Schedule("UTC", (
        single("morning", ["alice"], datetime(2026, 5, 1, 8), 4),
        single("evening", ["bob"], datetime(2026, 5, 1, 14), 4),
    ))
    report = coverage(schedule, utc(2026, 5, 1, 9), USERS, horizon=timedelta(hours=12))
    assert report.gaps == ((utc(2026, 5, 1, 12), utc(2026, 5, 1, 14)), (utc(2026, 5, 1, 18), utc(2026, 5, 1, 21)))
    assert report.empty_shifts == ()
    assert coverage(Schedule(), utc(2026, 5, 1), USERS).gaps == ((utc(2026, 5, 1), utc(2026, 5, 31)),)


# --- rotations and recurrence ----------------------------------------------------------------


def test_rolling_users_start_from_the_given_index_and_hand_over_a_whole_week_of_work_days():
    shift = Shift("business-hours", ROLLING_USERS, datetime(2026, 6, 1, 9), timedelta(hours=8),
                  rolling_users=(("alice",), ("bob", "carol")), start_rotation_from_user_index=1,
                  frequency=WEEKLY, week_start="MO", by_day=("MO", "TU", "WE", "TH", "FR"))
    shifts = final_shifts(Schedule("UTC", (shift,)), utc(2026, 6, 1), utc(2026, 6, 15), USERS)
    days = [(s.start.day, s.user_id) for s in shifts]
    assert days == [(d, u) for d in (1, 2, 3, 4, 5) for u in ("bob", "carol")] + [
        (d, "alice") for d in (8, 9, 10, 11, 12)
    ]


def test_an_interval_of_two_weeks_keeps_each_group_for_two_weeks():
    shift = weekly_rotation("UTC", start=datetime(2026, 6, 1, 9), duration=timedelta(days=14), interval=2)
    shifts = final_shifts(Schedule("UTC", (shift,)), utc(2026, 6, 1), utc(2026, 7, 27), USERS)
    assert [(s.start.date().isoformat(), s.user_id) for s in shifts] == [
        ("2026-06-01", "alice"), ("2026-06-15", "bob"), ("2026-06-29", "carol"), ("2026-07-13", "alice"),
    ]


def test_rotation_start_skips_earlier_occurrences_but_keeps_the_turns_and_until_ends_them():
    shift = weekly_rotation("UTC", start=datetime(2026, 6, 1, 9), rotation_start=datetime(2026, 6, 15, 9),
                            until=datetime(2026, 7, 1, 12))
    shifts = final_shifts(Schedule("UTC", (shift,)), utc(2026, 5, 1), utc(2026, 8, 1), USERS)
    assert [(s.user_id, s.start, s.end) for s in shifts] == [
        ("carol", utc(2026, 6, 15, 9), utc(2026, 6, 22, 9)),
        ("alice", utc(2026, 6, 22, 9), utc(2026, 6, 29, 9)),
        ("bob", utc(2026, 6, 29, 9), utc(2026, 7, 1, 12)),  # cut at until
    ]


def test_monthly_on_the_last_day_of_selected_months():
    shift = Shift("month-end", RECURRENT_EVENT, datetime(2026, 1, 31, 18), timedelta(hours=6), users=("dave",),
                  frequency=MONTHLY, by_monthday=(-1,), by_month=(2, 4, 6))
    starts = [s.start for s in final_shifts(Schedule("UTC", (shift,)), utc(2026, 1, 1), utc(2027, 1, 1), USERS)]
    assert starts == [utc(2026, 2, 28, 18), utc(2026, 4, 30, 18), utc(2026, 6, 30, 18)]


def test_a_monthly_rotation_with_by_day_counts_turns_per_month():
    shift = Shift("first-monday", ROLLING_USERS, datetime(2026, 1, 5, 9), timedelta(hours=12),
                  rolling_users=(("alice",), ("bob",)), frequency=MONTHLY, by_day=("1MO",))
    shifts = final_shifts(Schedule("UTC", (shift,)), utc(2026, 1, 1), utc(2026, 5, 1), USERS)
    assert [(s.start.date().isoformat(), s.user_id) for s in shifts] == [
        ("2026-01-05", "alice"), ("2026-02-02", "bob"), ("2026-03-02", "alice"), ("2026-04-06", "bob"),
    ]


def test_a_shift_whose_users_left_is_an_empty_shift_not_a_crash():
    shift = weekly_rotation("UTC", groups=(("ghost",), ("alice",)), start=datetime(2026, 6, 1, 9))
    report = coverage(Schedule("UTC", (shift,)), utc(2026, 6, 1, 9), USERS, horizon=timedelta(days=14))
    assert [o.users for o in report.empty_shifts] == [("ghost",)]
    assert report.gaps == ((utc(2026, 6, 1, 9), utc(2026, 6, 8, 9)),)


@pytest.mark.parametrize("fields, field", [
    (dict(type=RECURRENT_EVENT), "frequency"),
    (dict(type="weird"), "type"),
    (dict(duration=timedelta(0)), "duration"),
    (dict(time_zone="Mars/Olympus"), "time_zone"),
    (dict(time_zone="../../etc/passwd"), "time_zone"),
    (dict(frequency=WEEKLY, interval=0), "interval"),
    (dict(frequency=WEEKLY, by_day=("XX",)), "by_day"),
    (dict(frequency=MONTHLY, by_monthday=(32,)), "by_monthday"),
    (dict(frequency=MONTHLY, by_month=(13,)), "by_month"),
    (dict(frequency=WEEKLY, week_start="XY"), "week_start"),
    (dict(start=datetime(9999, 12, 31)), "start"),
    (dict(frequency=WEEKLY, until=datetime(1, 1, 1)), "until"),
])
def test_a_shift_that_cannot_be_expanded_is_refused_naming_the_field(fields, field):
    base = dict(id="x", type=SINGLE_EVENT, start=datetime(2026, 1, 1), duration=timedelta(hours=1), users=("alice",))
    with pytest.raises(ShiftError) as refused:
        Shift(**{**base, **fields})
    assert refused.value.field == field


def test_a_rotation_walked_from_checkpoints_gives_the_turns_of_a_walk_from_its_start(monkeypatch):
    """Rotations whose turns must be counted by walking the rule resume from checkpoints; asked
    about windows in any order, they answer as a walk from the first occurrence does."""
    from domain.schedules import HOURLY
    from domain.schedules import shifts as engine

    def rotation(name):
        return Shift(name, ROLLING_USERS, datetime(2025, 1, 1, 0, 30), timedelta(minutes=50), time_zone="Europe/Berlin",
                     rolling_users=(("alice",), ("bob",), ("carol",)), frequency=HOURLY, interval=3,
                     by_day=("MO", "WE", "SA"), by_month=(1, 3, 4, 10, 11))
    windows = [(utc(2026, 10, 20), utc(2026, 11, 3)), (utc(2025, 3, 20), utc(2025, 4, 2)),
               (utc(2026, 3, 25), utc(2026, 4, 1)), (utc(2025, 1, 1), utc(2025, 1, 9))]
    monkeypatch.setattr(engine, "CHECKPOINT_EVERY", 10**9)
    walked = [final_shifts(Schedule("UTC", (rotation("whole-walk"),)), *w, USERS) for w in windows]
    monkeypatch.setattr(engine, "CHECKPOINT_EVERY", 7)
    resumed = Schedule("UTC", (rotation("checkpoints"),))
    final_shifts(resumed, utc(2026, 12, 1), utc(2026, 12, 2), USERS)  # lays checkpoints up to the end
    assert [final_shifts(resumed, *w, USERS) for w in windows] == walked
    assert all(walked)
