"""Who is on call: OnCall's final schedule, computed from a schedule's occurrences.

At an instant, overrides come first; otherwise the highest ``level`` covering it wins; several
occurrences with the same precedence put the union of their users on call. An occurrence keeps
only the time no higher-precedence occurrence covers, and one whose users are all unknown or
may not be on call (viewers) counts as no occurrence at all.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from domain.schedules.shifts import Occurrence, Shift

MAX_WINDOW = timedelta(days=365)
COVERAGE_HORIZON = timedelta(days=30)


@dataclass(frozen=True)
class ScheduleUser:
    id: str
    username: str
    email: str | None = None
    can_be_on_call: bool = True  # viewers never are


class Directory:
    """The users a schedule's names and ids are matched against."""

    def __init__(self, users: Iterable[ScheduleUser] = ()):
        self.by_id: dict[str, ScheduleUser] = {}
        self._by_username: dict[str, ScheduleUser] = {}
        self._by_email: dict[str, ScheduleUser] = {}
        for user in users:
            self.by_id[user.id] = user
            self._by_username[user.username] = user
            if user.email:
                self._by_email[user.email.casefold()] = user
        self.on_call_ids = frozenset(u.id for u in self.by_id.values() if u.can_be_on_call)

    def match(self, name: str) -> ScheduleUser | None:
        """OnCall's iCal rule: a username exactly, or an email whatever its case."""
        return self._by_username.get(name) or self._by_email.get(name.casefold())


@dataclass(frozen=True)
class Segment:
    """A stretch of time with one on-call set, and the precedence that put it there."""

    start: datetime
    end: datetime
    users: frozenset[str]
    level: int
    is_override: bool


@dataclass(frozen=True)
class FinalShift:
    user_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Coverage:
    gaps: tuple[tuple[datetime, datetime], ...]
    empty_shifts: tuple[Occurrence, ...]


@dataclass(frozen=True, eq=False)
class Schedule:
    """What a schedule expands: its shifts (calendar and web schedules) and imported calendars
    (ical schedules, and a calendar schedule's overrides calendar)."""

    time_zone: str = "UTC"
    shifts: tuple[Shift, ...] = ()
    calendars: tuple = field(default=())  # ical.ImportedCalendar

    def occurrences(self, start: datetime, end: datetime, directory: Directory) -> list[Occurrence]:
        found = [o for shift in self.shifts for o in shift.occurrences(start, end, self.time_zone)]
        for calendar in self.calendars:
            found.extend(calendar.occurrences(start, end, directory, self.time_zone))
        return found

    def unmatched_names(self, start: datetime, end: datetime, directory: Directory) -> list[str]:
        names = set()
        for calendar in self.calendars:
            names.update(calendar.unmatched_names(start, end, directory, self.time_zone))
        return sorted(names)


def _precedence(occurrence: Occurrence) -> tuple[bool, int]:
    return occurrence.is_override, occurrence.level


def resolve(occurrences: Iterable[Occurrence], on_call_ids: frozenset[str]) -> list[Segment]:
    """The final schedule as non-overlapping segments in time order (a sweep over the
    occurrences' start and end times)."""
    valid = []
    for occurrence in occurrences:
        users = tuple(u for u in occurrence.users if u in on_call_ids)
        if users and occurrence.end > occurrence.start:
            valid.append((occurrence, frozenset(users)))
    valid.sort(key=lambda pair: pair[0].start)
    boundaries = sorted({o.start for o, _ in valid} | {o.end for o, _ in valid})
    segments: list[Segment] = []
    active: dict[int, tuple[Occurrence, frozenset[str]]] = {}
    ends: list[tuple[datetime, int]] = []
    next_index = 0
    for here, there in pairwise(boundaries):
        while next_index < len(valid) and valid[next_index][0].start <= here:
            active[next_index] = valid[next_index]
            heapq.heappush(ends, (valid[next_index][0].end, next_index))
            next_index += 1
        while ends and ends[0][0] <= here:
            active.pop(heapq.heappop(ends)[1], None)
        if not active:
            continue
        best = max(_precedence(o) for o, _ in active.values())
        users = frozenset().union(*(u for o, u in active.values() if _precedence(o) == best))
        last = segments[-1] if segments else None
        if last and last.end == here and last.users == users and (last.is_override, last.level) == best:
            segments[-1] = Segment(last.start, there, users, best[1], best[0])
        else:
            segments.append(Segment(here, there, users, best[1], best[0]))
    return segments


def on_call_at(schedule: Schedule, moment: datetime, directory: Directory) -> frozenset[str]:
    occurrences = schedule.occurrences(moment, moment + timedelta(seconds=1), directory)
    covering = [o for o in occurrences if o.start <= moment < o.end]
    for segment in resolve(covering, directory.on_call_ids):
        if segment.start <= moment < segment.end:
            return segment.users
    return frozenset()


def final_segments(schedule: Schedule, start: datetime, end: datetime, directory: Directory) -> list[Segment]:
    segments = resolve(schedule.occurrences(start, end, directory), directory.on_call_ids)
    clipped = []
    for segment in segments:
        if segment.end > start and segment.start < end:
            clipped.append(
                Segment(max(segment.start, start), min(segment.end, end), segment.users,
                        segment.level, segment.is_override)
            )
    return clipped


def final_shifts(schedule: Schedule, start: datetime, end: datetime, directory: Directory) -> list[FinalShift]:
    """Each user's stretches on call in [start, end), merged where they touch, ordered by start
    then user."""
    return shifts_from_segments(final_segments(schedule, start, end, directory))


def shifts_from_segments(segments: list[Segment]) -> list[FinalShift]:
    open_shifts: dict[str, FinalShift] = {}
    done: list[FinalShift] = []
    for segment in segments:
        for user in segment.users:
            current = open_shifts.get(user)
            if current and current.end == segment.start:
                open_shifts[user] = FinalShift(user, current.start, segment.end)
            else:
                if current:
                    done.append(current)
                open_shifts[user] = FinalShift(user, segment.start, segment.end)
    done.extend(open_shifts.values())
    return sorted(done, key=lambda s: (s.start, s.user_id, s.end))


def coverage(schedule: Schedule, now: datetime, directory: Directory,
             horizon: timedelta = COVERAGE_HORIZON) -> Coverage:
    """Gaps (nobody on call) and empty shifts (no user who may be on call) from now on."""
    end = now + horizon
    occurrences = schedule.occurrences(now, end, directory)
    gaps, cursor = [], now
    for segment in resolve(occurrences, directory.on_call_ids):
        if segment.end <= now or segment.start >= end:
            continue
        if segment.start > cursor:
            gaps.append((cursor, segment.start))
        cursor = max(cursor, segment.end)
    if cursor < end:
        gaps.append((cursor, end))
    empty = tuple(
        o for o in sorted(occurrences, key=lambda o: (o.start, o.source))
        if not any(u in directory.on_call_ids for u in o.users)
    )
    return Coverage(tuple(gaps), empty)

