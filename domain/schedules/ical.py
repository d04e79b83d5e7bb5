"""iCal in and out: imported calendars as schedule occurrences, and the final schedule as a
calendar a calendar app can subscribe to.

Parsing is ``icalendar``'s and recurrence expansion (RRULE, RDATE, EXDATE, moved instances,
time zones) is ``recurring-ical-events``'s. Users are named in an event's SUMMARY (optionally
after a ``[L<n>]`` level prefix), its DESCRIPTION or a single ATTENDEE, and matched by username
or, whatever its case, by email; names in a SUMMARY that match nobody are reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from hashlib import sha256

import icalendar
import recurring_ical_events

from domain.schedules.resolution import Directory, FinalShift
from domain.schedules.shifts import Occurrence, to_utc, zone_info

LEVEL_PREFIX = re.compile(r"^\s*\[L(\d{1,4})\]\s*")
NAME_SEPARATORS = re.compile(r"[\s,;]+")
# Expanding more occurrences than this in one window means a calendar nobody can read as a
# schedule (a minutely rule, say); it is refused rather than expanded without end.
MAX_OCCURRENCES_PER_WINDOW = 20_000
EXPANSION_CHUNK = timedelta(days=7)
# Rules more frequent than hourly would make thousands of events a day; no rota needs them.
REFUSED_FREQUENCIES = {"SECONDLY", "MINUTELY"}
PROBE_DAY = datetime(1900, 1, 1, tzinfo=UTC)
PRODID = "-//Tocsin//On-call schedule//EN"


class IcalError(ValueError):
    """A calendar that cannot be used; the message says why, for the person who supplied it."""


class ImportedCalendar:
    """One parsed calendar: an ical schedule's primary or overrides calendar."""

    def __init__(self, text: str | bytes, is_overrides: bool = False):
        self.calendar = parse_calendar(text)
        self.is_overrides = is_overrides
        self.source = "ical_overrides" if is_overrides else "ical_primary"

    def occurrences(self, start: datetime, end: datetime, directory: Directory,
                    schedule_zone: str = "UTC") -> list[Occurrence]:
        found = []
        for event_start, event_end, names, level in self._events(start, end, schedule_zone):
            users = []
            for name in names:
                user = directory.match(name)
                if user is not None and user.id not in users:
                    users.append(user.id)
            found.append(Occurrence(event_start, event_end, tuple(users), level, self.is_overrides, self.source))
        return found

    def unmatched_names(self, start: datetime, end: datetime, directory: Directory,
                        schedule_zone: str = "UTC") -> set[str]:
        missing = set()
        for _, _, names, _ in self._events(start, end, schedule_zone, summary_only=True):
            missing.update(name for name in names if directory.match(name) is None)
        return missing

    def _events(self, start, end, schedule_zone, summary_only=False):
        zone = zone_info(schedule_zone)
        seen = set()
        for event in self._expand(start, end):
            event_start = _instant(event.get("DTSTART").dt, zone)
            event_end = _end_of(event, event_start, zone)
            if event_end <= start or event_start >= end or event_end <= event_start:
                continue
            names, level = _names(event, summary_only)
            key = (event_start, event_end, str(event.get("UID", "")), tuple(names), level)
            if key not in seen:  # an event reaching over a chunk boundary is found twice
                seen.add(key)
                yield event_start, event_end, names, level

    def _expand(self, start, end):
        """Expanded events in [start, end), a chunk at a time so that a calendar with too many
        events is refused before all of them are made."""
        found = []
        chunk_start = start
        try:
            while chunk_start < end:
                chunk_end = min(end, chunk_start + EXPANSION_CHUNK)
                found.extend(recurring_ical_events.of(self.calendar).between(chunk_start, chunk_end))
                if len(found) > MAX_OCCURRENCES_PER_WINDOW:
                    raise IcalError(
                        f"The calendar has more than {MAX_OCCURRENCES_PER_WINDOW} events in the requested period"
                    )
                chunk_start = chunk_end
        except IcalError:
            raise
        except Exception as error:  # the libraries raise many kinds on a malformed series
            raise IcalError(f"The calendar could not be expanded: {error}") from error
        found.sort(key=lambda event: _sort_key(event.get("DTSTART").dt))
        return found


def _sort_key(value) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def parse_calendar(text: str | bytes) -> icalendar.Calendar:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise IcalError("The calendar is not UTF-8 text") from error
    if "\x00" in text:
        raise IcalError("The calendar contains a NUL character")
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except Exception as error:  # icalendar raises ValueError, KeyError, IndexError... on junk
        raise IcalError(f"The calendar could not be read: {error}") from error
    if not isinstance(calendar, icalendar.Calendar) or calendar.name != "VCALENDAR":
        raise IcalError("The text is not an iCalendar VCALENDAR")
    try:
        for event in calendar.walk("VEVENT"):
            _check_event(event)
        # Building the series reads every RRULE and date: a malformed one fails here, once,
        # rather than on each question asked of the schedule. (An empty window: the series
        # are built whatever the window, and nothing is expanded.)
        recurring_ical_events.of(calendar).between(PROBE_DAY, PROBE_DAY + timedelta(seconds=1))
    except IcalError:
        raise
    except Exception as error:  # icalendar flags broken properties only when they are read
        raise IcalError(f"The calendar could not be expanded: {error}") from error
    return calendar


def _check_event(event) -> None:
    if event.get("DTSTART") is None:
        raise IcalError(f"An event has no DTSTART (UID {event.get('UID', '?')})")
    event.get("DTSTART").dt  # noqa: B018 -- reading it is the check
    rules = event.get("RRULE")
    for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
        if REFUSED_FREQUENCIES & {str(f).upper() for f in rule.get("FREQ", [])}:
            raise IcalError("Recurrences more frequent than hourly are not supported")


def _instant(value, zone) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # floating time: the schedule's wall clock
            return to_utc(value, zone)
        return value.astimezone(UTC)
    if isinstance(value, date):  # all-day: from midnight in the schedule's zone
        return to_utc(datetime(value.year, value.month, value.day), zone)
    raise IcalError(f"Unreadable date: {value!r}")


def _end_of(event, event_start: datetime, zone) -> datetime:
    end = event.get("DTEND")
    if end is not None:
        return _instant(end.dt, zone)
    duration = event.get("DURATION")
    if duration is not None:
        return event_start + duration.dt
    start_value = event.get("DTSTART").dt
    if isinstance(start_value, date) and not isinstance(start_value, datetime):
        return _instant(start_value + timedelta(days=1), zone)
    return event_start


def _names(event, summary_only: bool) -> tuple[list[str], int]:
    summary = str(event.get("SUMMARY", "") or "")
    level = 0
    prefix = LEVEL_PREFIX.match(summary)
    if prefix:
        level = int(prefix.group(1))
        summary = summary[prefix.end():]
    names = [n for n in NAME_SEPARATORS.split(summary.strip()) if n]
    if summary_only:
        return names, level
    description = str(event.get("DESCRIPTION", "") or "")
    names.extend(n for n in NAME_SEPARATORS.split(description.strip()) if n)
    attendee = event.get("ATTENDEE")
    if attendee is not None and not isinstance(attendee, list):
        address = str(attendee)
        names.append(address[7:] if address.lower().startswith("mailto:") else address)
    return names, level


def export_calendar(final: list[FinalShift], directory: Directory, name: str, stamp: datetime,
                    schedule_id: str = "") -> bytes:
    """The final schedule as iCal: one event per user's stretch on call, named by username."""
    return export_calendars([(schedule_id, "", final)], directory, name, stamp)


def export_calendars(parts: Iterable[tuple[str, str, list[FinalShift]]], directory: Directory, name: str,
                     stamp: datetime) -> bytes:
    """Final shifts of one or more schedules as one calendar. Each part is (schedule id, a prefix
    for its events' summaries, its final shifts): a user's own calendar prefixes each event with
    its schedule's name, as OnCall's does ("Primary: alice")."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    for schedule_id, summary_prefix, final in parts:
        for shift in final:
            user = directory.by_id.get(shift.user_id)
            if user is None:
                continue
            event = icalendar.Event()
            key = f"{schedule_id}|{shift.user_id}|{shift.start.isoformat()}|{shift.end.isoformat()}"
            event.add("uid", f"tocsin-{sha256(key.encode()).hexdigest()[:32]}")
            event.add("summary", f"{summary_prefix}{user.username}")
            event.add("dtstart", shift.start.astimezone(UTC))
            event.add("dtend", shift.end.astimezone(UTC))
            event.add("dtstamp", stamp.astimezone(UTC))
            calendar.add_component(event)
    return calendar.to_ical()
