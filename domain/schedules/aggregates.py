"""Schedules and on-call shifts as event-sourced aggregates (in the configuration stream).

Every version of a schedule, of a shift and of an ical schedule's fetched calendar is an event,
so who was on call at a past instant can be answered from the log: replay the events recorded
up to that instant (``as_of``) and ask the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from hashlib import sha256
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.schedules.shifts import RECURRENT_EVENT, ROLLING_USERS, Shift

PREFIX_SCHEDULE = "S"  # OnCall's prefixes for schedules and on-call shifts
PREFIX_SHIFT = "O"
SCHEDULE_TYPES = ("calendar", "web", "ical")
CALENDARS = ("primary", "overrides")
WALL_CLOCK_FORMAT = "%Y-%m-%dT%H:%M:%S"
# Edits of a started rotation keep the versions before them (for the past's final shifts); the
# oldest beyond this many are dropped, so that a shift edited daily for years stays small.
MAX_EARLIER_VERSIONS = 100
EDITED_IN_PLACE = ("name", "team_id")  # change no one's time on call
VERSION_KEYS = ("previous", "resumes")


def digest(text: str) -> str:
    return sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class OnCallSchedule(Aggregate):
    @event("Created")
    def __init__(self, type: str, settings: dict, export_token_hash: str, created_at: datetime):
        self.type = type
        self.settings = dict(settings)  # name, team_id, time_zone, ical urls, shifts, ...
        self.export_token_hash = export_token_hash
        self.created_at = created_at
        self.deleted = False
        # Per calendar ("primary", "overrides"): the last good text, its digest, when fetched.
        self.calendars: dict[str, dict] = {}
        self.fetch_errors: dict[str, str] = {}

    @event("Updated")
    def _updated(self, settings: dict) -> None:
        self.settings = dict(settings)

    def update(self, settings: dict) -> bool:
        merged = {**self.settings, **settings}
        if merged == self.settings:
            return False
        self._updated(settings=merged)
        return True

    def _holds(self, which: str, text_digest: str) -> bool:
        """Whether this copy is the one held, with no error open for that calendar."""
        held = self.calendars.get(which)
        return bool(held) and held["digest"] == text_digest and which not in self.fetch_errors

    @event("CalendarFetched")
    def _calendar_fetched(self, which: str, text: str, text_digest: str, at: datetime) -> None:
        self.calendars[which] = {"text": text, "digest": text_digest, "at": at}
        self.fetch_errors.pop(which, None)

    def calendar_fetched(self, which: str, text: str, at: datetime) -> bool:
        """Record a good copy; nothing when it is the copy already held and no error is open
        (a refresh every 10 minutes must not grow the log)."""
        text_digest = digest(text)
        if self._holds(which, text_digest):
            return False
        self._calendar_fetched(which=which, text=text, text_digest=text_digest, at=at)
        return True

    @event("CalendarUploaded")
    def _calendar_uploaded(self, which: str, text: str, text_digest: str, at: datetime) -> None:
        self.calendars[which] = {"text": text, "digest": text_digest, "at": at}
        self.fetch_errors.pop(which, None)

    def calendar_uploaded(self, which: str, text: str, at: datetime) -> bool:
        """A calendar given as text in the API (instead of a URL); the same text again records
        nothing."""
        text_digest = digest(text)
        if self._holds(which, text_digest):
            return False
        self._calendar_uploaded(which=which, text=text, text_digest=text_digest, at=at)
        return True

    @event("CalendarFetchFailed")
    def _calendar_fetch_failed(self, which: str, error: str, at: datetime) -> None:
        self.fetch_errors[which] = error

    def calendar_fetch_failed(self, which: str, error: str, at: datetime) -> bool:
        """Record a failed fetch; the last good copy stays in use. Repeats of one error are
        recorded once."""
        if self.fetch_errors.get(which) == error:
            return False
        self._calendar_fetch_failed(which=which, error=error, at=at)
        return True

    @event("Deleted")
    def delete(self, at: datetime) -> None:
        self.deleted = True


def configured_calendars(schedule_type: str, settings: dict) -> tuple[str, ...]:
    """The calendars a schedule uses now: those it names by URL or was given as text. A copy held
    for a calendar since removed from the settings is not used."""
    kinds = CALENDARS if schedule_type == "ical" else ("overrides",) if schedule_type == "calendar" else ()
    return tuple(k for k in kinds if settings.get(f"ical_url_{k}") or settings.get(f"ical_file_{k}"))


class UserScheduleExport(Aggregate):
    """A user's iCal export token (its digest): one per user, revoked and issued again at will.
    The calendar it opens shows the user's shifts in every schedule."""

    @event("Issued")
    def __init__(self, user_id: str, token_hash: str, at: datetime):
        self.user_id = user_id
        self.token_hash = token_hash
        self.created_at = at
        self.revoked_at: datetime | None = None

    @staticmethod
    def create_id(user_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/user-schedule-exports/{user_id}")

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @event("Reissued")
    def reissue(self, token_hash: str, at: datetime) -> None:
        self.token_hash = token_hash
        self.created_at = at
        self.revoked_at = None

    @event("Revoked")
    def revoke(self, at: datetime) -> None:
        self.revoked_at = at


class OnCallShift(Aggregate):
    @event("Created")
    def __init__(self, spec: dict, created_at: datetime):
        self.spec = dict(spec)
        self.created_at = created_at
        self.deleted = False

    @event("Updated")
    def _updated(self, spec: dict) -> None:
        self.spec = dict(spec)

    def update(self, spec: dict) -> bool:
        if spec == self.spec:
            return False
        self._updated(spec=spec)
        return True

    @event("Deleted")
    def delete(self, at: datetime) -> None:
        self.deleted = True


def _wall_clock(value: str | None) -> datetime | None:
    return datetime.strptime(value, WALL_CLOCK_FORMAT) if value else None


def edited_from_now(before: dict, after: dict, now_local: datetime) -> dict:
    """OnCall's edit of a rotation of a web schedule that already started: the past stays as it
    was. The version before keeps the time up to the new ``rotation_start`` (the later of the
    one given and now), and the edit counts from then on, the occurrence in progress included.
    A rotation not yet started, a change of name or team only, and other shift types change in
    place. ``now_local``: now as wall-clock time in the shift's zone."""
    kept = {key: before[key] for key in VERSION_KEYS if key in before}
    recurrent = (RECURRENT_EVENT, ROLLING_USERS)
    same_times = all(after.get(key) == before.get(key)
                     for key in {*before, *after} - {*EDITED_IN_PLACE, *VERSION_KEYS})
    started = _wall_clock(before.get("rotation_start") or before["start"]) <= now_local
    if same_times or not started or before["type"] not in recurrent or after["type"] not in recurrent:
        return {**after, **kept}
    cut = max(_wall_clock(after.get("rotation_start") or after["start"]), now_local.replace(microsecond=0))
    earlier = {key: value for key, value in before.items() if key != "previous"}
    if earlier.get("until") is None or _wall_clock(earlier["until"]) > cut:
        earlier["until"] = cut.strftime(WALL_CLOCK_FORMAT)
    previous = [*before.get("previous", []), earlier][-MAX_EARLIER_VERSIONS:]
    return {**after, "rotation_start": cut.strftime(WALL_CLOCK_FORMAT), "resumes": True, "previous": previous}


def ended_now(spec: dict, now_local: datetime) -> dict | None:
    """OnCall's deletion of a started rotation of a web schedule: it ends now and its past stays
    (None: not started, or another type, so it is deleted)."""
    started = _wall_clock(spec.get("rotation_start") or spec["start"]) <= now_local
    if not started or spec["type"] not in (RECURRENT_EVENT, ROLLING_USERS):
        return None
    now_text = now_local.replace(microsecond=0).strftime(WALL_CLOCK_FORMAT)
    if spec.get("until") is not None and spec["until"] <= now_text:
        return spec  # already over
    return {**spec, "until": now_text}


def shift_versions(shift_id: str, spec: dict) -> list[Shift]:
    """The engine's shifts for a stored spec: the versions before edits, then the current one."""
    return [*(shift_from_spec(shift_id, earlier) for earlier in spec.get("previous", [])),
            shift_from_spec(shift_id, spec)]


def shift_from_spec(shift_id: str, spec: dict) -> Shift:
    """The engine's shift from a stored spec (JSON values: wall-clock text, seconds, lists)."""
    return Shift(
        id=shift_id,
        type=spec["type"],
        start=_wall_clock(spec["start"]),
        duration=timedelta(seconds=spec["duration"]),
        time_zone=spec.get("time_zone"),
        level=spec.get("level") or 0,
        users=tuple(spec.get("users") or ()),
        rolling_users=tuple(tuple(group) for group in spec.get("rolling_users") or ()) if spec["type"] == ROLLING_USERS else (),
        start_rotation_from_user_index=spec.get("start_rotation_from_user_index") or 0,
        rotation_start=_wall_clock(spec.get("rotation_start")),
        frequency=spec.get("frequency"),
        interval=spec.get("interval") or 1,
        until=_wall_clock(spec.get("until")),
        week_start=spec.get("week_start") or "SU",
        by_day=tuple(spec.get("by_day") or ()),
        by_month=tuple(spec.get("by_month") or ()),
        by_monthday=tuple(spec.get("by_monthday") or ()),
        resumes=bool(spec.get("resumes")),
        name=spec.get("name", ""),
    )


def as_of(events: Iterable, moment: datetime):
    """The aggregate as the events recorded up to ``moment`` left it (None if it did not exist)."""
    aggregate = None
    for domain_event in events:
        if domain_event.timestamp > moment:
            break
        aggregate = domain_event.mutate(aggregate)
    return aggregate
