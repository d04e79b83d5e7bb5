"""On-call shifts (OnCall's ``CustomOnCallShift``) and their occurrences in real time.

A shift's ``start``, ``rotation_start`` and ``until`` are wall-clock times in the shift's zone
(or the schedule's). Recurrences are expanded by ``dateutil.rrule`` on those wall-clock times, so
a 09:00 hand-over stays at 09:00 local time across daylight-saving changes, and each occurrence
is then placed in real time with ``zoneinfo``.

``duration`` follows RFC 5545 (section 3.3.6): its whole days are nominal (the wall-clock time
is kept, so a 7-day weekly shift ends exactly when the next one starts, even in the week of a
change) and the remaining hours, minutes and seconds are exact (a 4-hour shift over the missing
or the repeated hour lasts 4 real hours). A wall-clock time that does not exist (the missing
hour) is read with the offset in force before the change, a repeated one as its first instance
(``fold=0``).
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

SINGLE_EVENT = "single_event"
RECURRENT_EVENT = "recurrent_event"
ROLLING_USERS = "rolling_users"
OVERRIDE = "override"
SHIFT_TYPES = (SINGLE_EVENT, RECURRENT_EVENT, ROLLING_USERS, OVERRIDE)

HOURLY, DAILY, WEEKLY, MONTHLY = "hourly", "daily", "weekly", "monthly"
FREQUENCIES = (HOURLY, DAILY, WEEKLY, MONTHLY)
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
DEFAULT_WEEK_START = "SU"  # OnCall's default
# Wall-clock times outside these years are refused: far enough for any rota, and far from the
# ends of datetime's range, which time-zone arithmetic would run past.
MIN_YEAR, MAX_YEAR = 1970, 9000
CHECKPOINT_EVERY = 1024

# An ordinal weekday as RFC 5545 writes it: "MO", "1MO", "-2TU".
BY_DAY_PATTERN = re.compile(r"^([+-]?[1-5])?(MO|TU|WE|TH|FR|SA|SU)$")


class ShiftError(ValueError):
    """A shift that cannot be expanded; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a shift in real time (UTC), with the users it puts on call."""

    start: datetime
    end: datetime
    users: tuple[str, ...]
    level: int
    is_override: bool
    source: str  # the shift (or calendar event) it comes from, for reports


@dataclass(frozen=True)
class Shift:
    id: str
    type: str
    start: datetime  # naive wall-clock time in ``time_zone`` (or the schedule's zone)
    duration: timedelta
    time_zone: str | None = None
    level: int = 0
    users: tuple[str, ...] = ()
    rolling_users: tuple[tuple[str, ...], ...] = ()
    start_rotation_from_user_index: int = 0
    rotation_start: datetime | None = None  # naive wall-clock; occurrences before it are not made
    frequency: str | None = None
    interval: int = 1
    until: datetime | None = None  # naive wall-clock
    week_start: str = DEFAULT_WEEK_START
    by_day: tuple[str, ...] = ()
    by_month: tuple[int, ...] = ()
    by_monthday: tuple[int, ...] = ()
    # An edited rotation resumes at ``rotation_start``: the occurrence in progress then counts
    # from that instant (the version before the edit covers the time up to it).
    resumes: bool = False
    name: str = field(default="", compare=False)

    def __post_init__(self):
        check_shift(self)

    @property
    def is_recurrent(self) -> bool:
        return self.type in (RECURRENT_EVENT, ROLLING_USERS) and self.frequency is not None

    def zone(self, schedule_zone: str) -> ZoneInfo:
        return zone_info(self.time_zone or schedule_zone)

    def occurrences(self, window_start: datetime, window_end: datetime, schedule_zone: str = "UTC") -> list[Occurrence]:
        """Occurrences overlapping [window_start, window_end) (aware datetimes), in start order."""
        zone = self.zone(schedule_zone)
        found = []
        resumed_at = to_utc(self.rotation_start, zone) if self.resumes and self.rotation_start else None
        for local_start, users in self._local_starts(window_start, window_end, zone):
            start = to_utc(local_start, zone)
            end = end_of(local_start, self.duration, zone)
            if self.until is not None:
                end = min(end, to_utc(self.until, zone))
            if resumed_at is not None:
                start = max(start, resumed_at)
            if end > window_start and start < window_end and end > start:
                found.append(
                    Occurrence(start, end, users, self.level, self.type == OVERRIDE, self.id)
                )
        return found

    def _local_starts(self, window_start, window_end, zone) -> Iterator[tuple[datetime, tuple[str, ...]]]:
        if not self.is_recurrent:
            users = self.users if self.type != ROLLING_USERS else _turn_users(self, 0)
            yield self.start, users
            return
        # Occurrences that start before the window can still reach into it: look back one
        # duration, plus two days for any zone offset.
        lo = to_local(window_start, zone) - self.duration - timedelta(days=2)
        hi = to_local(window_end, zone) + timedelta(days=2)
        # A resumed rotation also makes the occurrence in progress at rotation_start (clipped to
        # it in ``occurrences``): one duration back at most, and a day for a change of offset.
        first_made = self.rotation_start or self.start
        if self.resumes:
            first_made = max(self.start, first_made - self.duration - timedelta(days=1))
        rule = _rule(self)
        if self.type == RECURRENT_EVENT:
            for local_start in rule.between(max(lo, first_made), hi, inc=True):
                if local_start >= first_made:
                    yield local_start, self.users
            return
        for local_start, turn in _rolling_turns(self, rule, max(lo, first_made), hi):
            if local_start >= first_made:
                yield local_start, _turn_users(self, turn)


def check_shift(shift: Shift) -> None:
    """Invariants every stored shift keeps (the API gives OnCall's texts before this)."""
    if shift.type not in SHIFT_TYPES:
        raise ShiftError("type", f"Invalid shift type: {shift.type}")
    if shift.duration <= timedelta(0):
        raise ShiftError("duration", "Duration must be positive")
    if shift.time_zone is not None:
        zone_info(shift.time_zone)
    if shift.type in (RECURRENT_EVENT, ROLLING_USERS) and shift.frequency is None:
        raise ShiftError("frequency", "Field 'frequency' is required for this on-call shift type")
    if shift.frequency is not None and shift.frequency not in FREQUENCIES:
        raise ShiftError("frequency", f"Invalid frequency: {shift.frequency}")
    if shift.interval < 1:
        raise ShiftError("interval", "Interval must be a positive integer")
    if shift.week_start not in WEEKDAYS:
        raise ShiftError("week_start", f"Invalid week start: {shift.week_start}")
    for day in shift.by_day:
        if not BY_DAY_PATTERN.match(day):
            raise ShiftError("by_day", f"Invalid day value: {day}")
    for month in shift.by_month:
        if not 1 <= month <= 12:
            raise ShiftError("by_month", f"Invalid month value: {month}")
    for day in shift.by_monthday:
        if not (1 <= abs(day) <= 31):
            raise ShiftError("by_monthday", f"Invalid monthday value: {day}")
    if shift.type == ROLLING_USERS and shift.start_rotation_from_user_index < 0:
        raise ShiftError("start_rotation_from_user_index", "Must be a non-negative integer")
    for name, moment in (("start", shift.start), ("rotation_start", shift.rotation_start), ("until", shift.until)):
        if moment is None:
            continue
        if moment.tzinfo is not None:
            raise ShiftError(name, f"{name} is a wall-clock time without a zone")
        if not MIN_YEAR <= moment.year <= MAX_YEAR:
            raise ShiftError(name, f"{name} must be between the years {MIN_YEAR} and {MAX_YEAR}")


@lru_cache(maxsize=1024)
def zone_info(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError) as error:  # unknown zone, or a name that is no zone
        raise ShiftError("time_zone", "Invalid time zone") from error


def to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in ``zone`` as a UTC instant (fold=0 for missing and repeated times)."""
    return local.replace(tzinfo=zone).astimezone(UTC)


def to_local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def end_of(local_start: datetime, duration: timedelta, zone: ZoneInfo) -> datetime:
    """RFC 5545: whole days are nominal (wall-clock kept), the rest exact."""
    days = timedelta(days=duration.days)
    return to_utc(local_start + days, zone) + (duration - days)


@lru_cache(maxsize=4096)
def _rule(shift: Shift):
    parts = [f"FREQ={shift.frequency.upper()}", f"INTERVAL={shift.interval}", f"WKST={shift.week_start}"]
    if shift.by_day:
        parts.append("BYDAY=" + ",".join(shift.by_day))
    if shift.by_month:
        parts.append("BYMONTH=" + ",".join(map(str, shift.by_month)))
    if shift.by_monthday:
        parts.append("BYMONTHDAY=" + ",".join(map(str, shift.by_monthday)))
    if shift.until is not None:
        parts.append("UNTIL=" + shift.until.strftime("%Y%m%dT%H%M%S"))
    try:
        return rrulestr(";".join(parts), dtstart=shift.start, cache=False)
    except (ValueError, TypeError) as error:
        raise ShiftError("frequency", f"Invalid recurrence: {error}") from error


def _period_key(shift: Shift, local: datetime) -> int:
    """Which frequency period (hour, day, week from ``week_start``, month) a time falls in."""
    if shift.frequency == HOURLY:
        return local.toordinal() * 24 + local.hour
    if shift.frequency == DAILY:
        return local.toordinal()
    if shift.frequency == WEEKLY:
        # date.toordinal() 1 is a Monday; weeks begin on week_start.
        return (local.toordinal() - 1 - WEEKDAYS.index(shift.week_start)) // 7
    return local.year * 12 + local.month - 1


def _every_period_has_an_occurrence(shift: Shift) -> bool:
    """Whether each ``interval``-th period holds an occurrence, so turns can be counted by
    arithmetic instead of by walking the rule from the start."""
    if shift.by_month or shift.by_monthday:
        return False
    if shift.frequency in (HOURLY, DAILY):
        return not shift.by_day
    if shift.frequency == WEEKLY:
        return all(len(day) == 2 for day in shift.by_day)  # plain weekdays, no ordinals
    return not shift.by_day and shift.start.day <= 28


def _rolling_turns(shift: Shift, rule, lo: datetime, hi: datetime) -> Iterator[tuple[datetime, int]]:
    """Occurrences in [lo, hi] with their turn: the number of periods that held an occurrence
    before this one's period, counted from the first occurrence (OnCall hands the rotation on
    once per period, so a Monday-to-Friday weekly shift gives each group a whole week)."""
    first = rule.after(shift.start, inc=True)
    if first is None:
        return
    first_key = _period_key(shift, first)
    if _every_period_has_an_occurrence(shift):
        for local_start in rule.between(lo, hi, inc=True):
            yield local_start, (_period_key(shift, local_start) - first_key) // shift.interval
        return
    # Walk the rule, resuming from the last checkpoint before the window: a rotation that began
    # years ago is walked once, not on every question.
    checkpoints, lock = _checkpoints(shift)
    with lock:
        if not checkpoints:
            checkpoints.append((first, 0, first_key))
        index = bisect.bisect_right(checkpoints, lo, key=lambda point: point[0]) - 1
        resume, turn, key = checkpoints[max(index, 0)]
        last_saved = checkpoints[-1][0]
    # An occurrence lies on the rule's grid (its interval, weekday, day of month and time of day
    # all come from it), so the rule restarted there gives the same occurrences from there on.
    for walked, local_start in enumerate(rule.replace(dtstart=resume), start=1):
        if local_start > hi:
            return
        this_key = _period_key(shift, local_start)
        if this_key != key:
            turn, key = turn + 1, this_key
        if walked % CHECKPOINT_EVERY == 0 and local_start > last_saved:
            with lock:
                if local_start > checkpoints[-1][0]:
                    checkpoints.append((local_start, turn, key))
                    last_saved = local_start
        if local_start >= lo:
            yield local_start, turn


@lru_cache(maxsize=1024)
def _checkpoints(shift: Shift) -> tuple[list[tuple[datetime, int, int]], threading.Lock]:
    """(occurrence, its turn, its period) every ``CHECKPOINT_EVERY`` occurrences of a rotation."""
    return [], threading.Lock()


def _turn_users(shift: Shift, turn: int) -> tuple[str, ...]:
    groups = shift.rolling_users
    if not groups:
        return ()
    return groups[(turn + shift.start_rotation_from_user_index) % len(groups)]
