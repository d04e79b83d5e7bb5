"""iCal import (user matching, levels, overrides, recurrence, hostile calendars) and the export
of the final schedule (parsed by icalendar, expanded by recurring-ical-events, round trip)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import icalendar
import pytest
import recurring_ical_events

from domain.schedules import (
    OVERRIDE,
    ROLLING_USERS,
    WEEKLY,
    Directory,
    IcalError,
    ImportedCalendar,
    Schedule,
    ScheduleUser,
    Shift,
    export_calendar,
    final_shifts,
    on_call_at,
)

USERS = Directory([
    ScheduleUser("U1", "alice", "Alice@Example.com"),
    ScheduleUser("U2", "bob", "bob@example.com"),
    ScheduleUser("U3", "carol", "carol@example.com"),
    ScheduleUser("U9", "victor", "victor@example.com", can_be_on_call=False),
])


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def calendar(*events: str) -> str:
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + "".join(events) + "END:VCALENDAR\r\n"


def vevent(uid: str, summary: str, start: str, end: str, *extra: str) -> str:
    lines = [f"UID:{uid}", f"SUMMARY:{summary}", start, end, *extra]
    return "BEGIN:VEVENT\r\n" + "".join(line + "\r\n" for line in lines) + "END:VEVENT\r\n"


def test_users_are_matched_by_username_or_email_of_any_case_and_unmatched_names_are_reported():
    primary = ImportedCalendar(calendar(
        vevent("1", "alice", "DTSTART:20260601T000000Z", "DTEND:20260601T080000Z"),
        vevent("2", "ALICE@example.COM bob", "DTSTART:20260601T080000Z", "DTEND:20260601T160000Z"),
        vevent("3", "Alice mallory", "DTSTART:20260601T160000Z", "DTEND:20260602T000000Z"),
        vevent("4", "On call", "DTSTART:20260602T000000Z", "DTEND:20260602T080000Z",
               "ATTENDEE:mailto:Carol@Example.com"),
    ))
    schedule = Schedule("UTC", calendars=(primary,))
    assert on_call_at(schedule, utc(2026, 6, 1, 1), USERS) == {"U1"}
    assert on_call_at(schedule, utc(2026, 6, 1, 9), USERS) == {"U1", "U2"}
    assert on_call_at(schedule, utc(2026, 6, 1, 17), USERS) == set()  # usernames are exact
    assert on_call_at(schedule, utc(2026, 6, 2, 1), USERS) == {"U3"}
    assert schedule.unmatched_names(utc(2026, 6, 1), utc(2026, 6, 3), USERS) == ["Alice", "On", "call", "mallory"]


def test_a_level_prefix_ranks_events_and_the_overrides_calendar_wins():
    primary = ImportedCalendar(calendar(
        vevent("1", "alice", "DTSTART:20260601T000000Z", "DTEND:20260602T000000Z"),
        vevent("2", "[L2] bob", "DTSTART:20260601T060000Z", "DTEND:20260601T120000Z"),
        vevent("3", "[L2] victor", "DTSTART:20260601T120000Z", "DTEND:20260601T180000Z"),
    ))
    overrides = ImportedCalendar(calendar(
        vevent("o", "carol", "DTSTART:20260601T100000Z", "DTEND:20260601T110000Z"),
    ), is_overrides=True)
    schedule = Schedule("UTC", calendars=(primary, overrides))
    assert on_call_at(schedule, utc(2026, 6, 1, 7), USERS) == {"U2"}
    assert on_call_at(schedule, utc(2026, 6, 1, 10, 30), USERS) == {"U3"}
    assert on_call_at(schedule, utc(2026, 6, 1, 13), USERS) == {"U1"}  # a viewer never hides a rotation


def test_a_recurring_event_with_a_zone_keeps_its_wall_clock_time_and_honours_exdate():
    primary = ImportedCalendar(calendar(vevent(
        "weekly", "bob", "DTSTART;TZID=America/New_York:20261026T090000",
        "DTEND;TZID=America/New_York:20261026T170000", "RRULE:FREQ=WEEKLY;COUNT=3",
        "EXDATE;TZID=America/New_York:20261102T090000",
    )))
    starts = [s.start for s in final_shifts(Schedule("UTC", calendars=(primary,)), utc(2026, 10, 1), utc(2026, 12, 1), USERS)]
    assert starts == [utc(2026, 10, 26, 13), utc(2026, 11, 9, 14)]  # 09:00 EDT, then 09:00 EST


def test_all_day_and_floating_events_are_read_in_the_schedule_zone():
    primary = ImportedCalendar(calendar(
        vevent("day", "alice", "DTSTART;VALUE=DATE:20260701", "DTEND;VALUE=DATE:20260702"),
        vevent("floating", "bob", "DTSTART:20260703T090000", "DTEND:20260703T100000"),
    ))
    shifts = final_shifts(Schedule("Europe/Berlin", calendars=(primary,)), utc(2026, 6, 1), utc(2026, 8, 1), USERS)
    assert [(s.user_id, s.start, s.end) for s in shifts] == [
        ("U1", utc(2026, 6, 30, 22), utc(2026, 7, 1, 22)),
        ("U2", utc(2026, 7, 3, 7), utc(2026, 7, 3, 8)),
    ]


@pytest.mark.parametrize("text, says", [
    ("hello world", "could not be read"),
    ("", "could not be read"),
    ("BEGIN:VEVENT\r\nUID:1\r\nDTSTART:20260101T000000Z\r\nEND:VEVENT\r\n", "not an iCalendar VCALENDAR"),
    (calendar("BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:alice\r\nEND:VEVENT\r\n"), "no DTSTART"),
    (calendar(vevent("1", "alice", "DTSTART:2026XX01T000000Z", "DTEND:20260101T010000Z")), "could not be expanded"),
    (calendar(vevent("1", "alice", "DTSTART:20260101T000000Z", "DTEND:20260101T010000Z", "RRULE:FREQ=FOO")),
     "could not be expanded"),
    (calendar(vevent("1", "alice", "DTSTART:20260101T000000Z", "DTEND:20260101T000100Z", "RRULE:FREQ=MINUTELY")),
     "more frequent than hourly"),
    (calendar(vevent("1", "al\x00ice", "DTSTART:20260101T000000Z", "DTEND:20260101T010000Z")), "NUL"),
    (b"BEGIN:VCALENDAR\r\n\xff\xfe\r\nEND:VCALENDAR\r\n", "not UTF-8"),
    ("BEGIN:VCALENDAR\r\n" + "BEGIN:VEVENT\r\n" * 5000 + "END:VEVENT\r\n" * 5000 + "END:VCALENDAR\r\n", "no DTSTART"),
])
def test_a_calendar_that_cannot_be_used_is_refused_with_a_clear_reason(text, says):
    with pytest.raises(IcalError, match=says):
        ImportedCalendar(text)


def test_a_calendar_with_too_many_events_in_a_window_is_refused_not_expanded_without_end():
    many = calendar(*(
        vevent(str(i), "alice", "DTSTART:20260101T000000Z", "DTEND:20260101T010000Z", "RRULE:FREQ=HOURLY")
        for i in range(120)  # 20160 events in the first week
    ))
    schedule = Schedule("UTC", calendars=(ImportedCalendar(many),))
    with pytest.raises(IcalError, match="more than"):
        final_shifts(schedule, utc(2026, 1, 1), utc(2026, 12, 31), USERS)


def berlin_rotation_with_overrides() -> Schedule:
    rotation = Shift("rotation", ROLLING_USERS, datetime(2026, 3, 2, 9), timedelta(days=7),
                     rolling_users=(("U1",), ("U2",), ("U3", "U1")), frequency=WEEKLY, week_start="MO")
    second_line = Shift("second", ROLLING_USERS, datetime(2026, 3, 4, 18), timedelta(hours=14), level=1,
                        rolling_users=(("U2",), ("U9",)), frequency="daily")
    cover = Shift("cover", OVERRIDE, datetime(2026, 3, 29, 1), timedelta(hours=5), users=("U3",))
    return Schedule("Europe/Berlin", (rotation, second_line, cover))


def test_the_export_parses_in_icalendar_expands_in_recurring_ical_events_and_imports_identically():
    schedule = berlin_rotation_with_overrides()
    start, end = utc(2026, 3, 1), utc(2026, 5, 1)
    final = final_shifts(schedule, start, end, USERS)
    exported = export_calendar(final, USERS, "Primary on call", utc(2026, 2, 1), schedule_id="S1")

    parsed = icalendar.Calendar.from_ical(exported)
    assert str(parsed["X-WR-CALNAME"]) == "Primary on call"
    expanded = recurring_ical_events.of(parsed).between(start, end)
    assert sorted((e["DTSTART"].dt, e["DTEND"].dt, str(e["SUMMARY"])) for e in expanded) == sorted(
        (s.start, s.end, USERS.by_id[s.user_id].username) for s in final
    )
    assert len({str(e["UID"]) for e in expanded}) == len(final)

    imported = Schedule("UTC", calendars=(ImportedCalendar(exported),))
    assert final_shifts(imported, start, end, USERS) == final
    assert {s.user_id for s in final} == {"U1", "U2", "U3"}  # the viewer's turns left no trace
