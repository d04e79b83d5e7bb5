"""Property tests: random rotations and overrides against a brute-force reference.

The reference walks each rotation occurrence by occurrence with plain wall-clock arithmetic
(no rrule) and decides who is on call at an instant straight from OnCall's rule, so it shares
nothing with the engine but the meaning of the fields.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.schedules import (
    DAILY,
    HOURLY,
    OVERRIDE,
    ROLLING_USERS,
    SINGLE_EVENT,
    WEEKDAYS,
    WEEKLY,
    Directory,
    ImportedCalendar,
    Schedule,
    ScheduleUser,
    Shift,
    export_calendar,
    final_segments,
    final_shifts,
    on_call_at,
)

# Zones with a change of an hour, of half an hour (Lord Howe), none (Kolkata) and UTC.
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
NAMES = ["ann", "ben", "cat", "dan", "eve"]
VIEWER = "vic"
DIRECTORY = Directory([ScheduleUser(n, n, f"{n}@example.org") for n in NAMES]
                      + [ScheduleUser(VIEWER, VIEWER, can_be_on_call=False)])
PERIOD = {HOURLY: timedelta(hours=1), DAILY: timedelta(days=1), WEEKLY: timedelta(weeks=1)}
WINDOW_START = datetime(2026, 2, 20, tzinfo=UTC)
WINDOW_END = datetime(2026, 4, 20, tzinfo=UTC)  # around the March changes in both hemispheres

user_groups = st.lists(
    st.lists(st.sampled_from(NAMES + [VIEWER, "nobody"]), min_size=1, max_size=2).map(tuple),
    min_size=1, max_size=4,
).map(tuple)


@st.composite
def rotations(draw, index):
    frequency = draw(st.sampled_from([HOURLY, DAILY, WEEKLY]))
    interval = draw(st.integers(1, 3))
    period = PERIOD[frequency] * interval
    if frequency == HOURLY:
        start = WINDOW_START + timedelta(hours=draw(st.integers(-48, 24 * 50)))
    else:
        start = WINDOW_START + timedelta(minutes=15 * draw(st.integers(-4 * 24 * 20, 4 * 24 * 50)))
    seconds = int(period.total_seconds())
    duration = timedelta(seconds=draw(st.integers(600, 2 * seconds) if frequency != HOURLY else st.integers(600, 3 * seconds)))
    # Days of the week for daily and hourly rotations: some days have no turn at all, so turns
    # are counted by walking the rule (the engine's other path).
    by_day = () if frequency == WEEKLY else tuple(draw(st.lists(st.sampled_from(WEEKDAYS), max_size=4, unique=True)))
    return Shift(
        id=f"rotation-{index}", type=ROLLING_USERS, start=start.replace(tzinfo=None), duration=duration,
        time_zone=draw(st.sampled_from(ZONES)), level=draw(st.integers(0, 2)),
        rolling_users=draw(user_groups), start_rotation_from_user_index=draw(st.integers(0, 5)),
        frequency=frequency, interval=interval, week_start=draw(st.sampled_from(WEEKDAYS)), by_day=by_day,
    )


@st.composite
def overrides(draw, index):
    start = WINDOW_START + timedelta(minutes=30 * draw(st.integers(0, 2 * 24 * 58)))
    return Shift(
        id=f"override-{index}", type=draw(st.sampled_from([OVERRIDE, SINGLE_EVENT])),
        start=start.replace(tzinfo=None), duration=timedelta(minutes=30 * draw(st.integers(1, 200))),
        time_zone=draw(st.sampled_from(ZONES)), level=draw(st.integers(0, 3)),
        users=draw(st.lists(st.sampled_from(NAMES + [VIEWER]), min_size=1, max_size=2).map(tuple)),
    )


@st.composite
def schedules(draw):
    count = draw(st.integers(1, 3))
    shifts = [draw(rotations(i)) for i in range(count)]
    shifts += [draw(overrides(i)) for i in range(draw(st.integers(0, 4)))]
    return Schedule(draw(st.sampled_from(ZONES)), tuple(shifts))


def reference_end(local_start: datetime, duration: timedelta, zone: ZoneInfo) -> datetime:
    days = timedelta(days=duration.days)
    return (local_start + days).replace(tzinfo=zone).astimezone(UTC) + (duration - days)


def reference_occurrences(schedule: Schedule):
    """(start, end, users, precedence) by stepping each rotation one period at a time."""
    found = []
    for shift in schedule.shifts:
        zone = ZoneInfo(shift.time_zone or schedule.time_zone)
        if shift.type != ROLLING_USERS:
            start = shift.start.replace(tzinfo=zone).astimezone(UTC)
            found.append((start, reference_end(shift.start, shift.duration, zone), shift.users,
                          (shift.type == OVERRIDE, shift.level)))
            continue
        step = PERIOD[shift.frequency] * shift.interval
        k = turn = 0
        while True:
            local_start = shift.start + k * step
            k += 1
            start = local_start.replace(tzinfo=zone).astimezone(UTC)
            if start > WINDOW_END + timedelta(days=1):
                break
            if shift.by_day and WEEKDAYS[local_start.weekday()] not in shift.by_day:
                continue  # no occurrence that day, and no turn taken
            groups = shift.rolling_users
            users = groups[(turn + shift.start_rotation_from_user_index) % len(groups)]
            found.append((start, reference_end(local_start, shift.duration, zone), users, (False, shift.level)))
            turn += 1
    return found


def reference_on_call(occurrences, moment) -> frozenset[str]:
    covering = []
    for start, end, users, precedence in occurrences:
        valid = {u for u in users if u in DIRECTORY.on_call_ids}
        if start <= moment < end and valid:
            covering.append((precedence, valid))
    if not covering:
        return frozenset()
    best = max(p for p, _ in covering)
    return frozenset().union(*(v for p, v in covering if p == best))


def union_of(intervals):
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


PROPERTY_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(schedule=schedules(), data=st.data())
def test_who_is_on_call_matches_the_brute_force_reference(schedule, data):
    reference = reference_occurrences(schedule)
    span = int((WINDOW_END - WINDOW_START).total_seconds())
    moments = [WINDOW_START + timedelta(seconds=s) for s in data.draw(st.lists(st.integers(0, span - 1), max_size=15))]
    # The edges are where the classic mistakes are: starts and ends in the window, and the
    # second before each.
    edges = sorted({edge for start, end, _, _ in reference for edge in (start, end)
                    if WINDOW_START < edge < WINDOW_END})
    if edges:
        for index in data.draw(st.lists(st.integers(0, len(edges) - 1), min_size=1, max_size=20)):
            moments += [edges[index], edges[index] - timedelta(seconds=1)]
    final = final_shifts(schedule, WINDOW_START, WINDOW_END, DIRECTORY)
    for moment in moments:
        expected = reference_on_call(reference, moment)
        assert on_call_at(schedule, moment, DIRECTORY) == expected, moment
        assert {s.user_id for s in final if s.start <= moment < s.end} == expected, moment


@PROPERTY_SETTINGS
@given(schedule=schedules())
def test_final_shifts_never_overlap_and_cover_exactly_the_union_of_the_occurrences(schedule):
    segments = final_segments(schedule, WINDOW_START, WINDOW_END, DIRECTORY)
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:]))  # no two levels at once
    final = final_shifts(schedule, WINDOW_START, WINDOW_END, DIRECTORY)
    for user in NAMES:
        mine = sorted((s.start, s.end) for s in final if s.user_id == user)
        assert all(a[1] < b[0] for a, b in zip(mine, mine[1:]))  # never overlapping nor touching
    occurrences = [
        (max(start, WINDOW_START), min(end, WINDOW_END))
        for start, end, users, _ in reference_occurrences(schedule)
        if any(u in DIRECTORY.on_call_ids for u in users) and end > WINDOW_START and start < WINDOW_END
    ]
    assert union_of((s.start, s.end) for s in final) == union_of(occurrences)
    assert all(s.start < s.end and WINDOW_START <= s.start and s.end <= WINDOW_END for s in final)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=schedules())
def test_the_exported_final_schedule_imports_to_the_same_final_shifts(schedule):
    final = final_shifts(schedule, WINDOW_START, WINDOW_END, DIRECTORY)
    exported = export_calendar(final, DIRECTORY, "Random", datetime(2026, 1, 1, tzinfo=UTC))
    imported = Schedule("UTC", calendars=(ImportedCalendar(exported),))
    assert final_shifts(imported, WINDOW_START, WINDOW_END, DIRECTORY) == final
