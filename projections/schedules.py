"""Schedules and on-call shifts as the API lists them; the engine's view of a schedule (its
shifts, its calendars, the users who may be on call); the 10-minute refresh of calendars by URL;
and who was on call at a past instant, answered from the log."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache, singledispatchmethod
from uuid import UUID

from adapters.ical_fetch import FetchError, fetch_calendar
from domain.ids import PREFIX_USER, public_id
from domain.schedules import (
    Directory,
    IcalError,
    ImportedCalendar,
    Schedule,
    ScheduleUser,
    on_call_at,
)
from domain.schedules.aggregates import (
    PREFIX_SCHEDULE,
    PREFIX_SHIFT,
    OnCallSchedule,
    OnCallShift,
    UserScheduleExport,
    configured_calendars,
    shift_versions,
)
from domain.users import User
from projections.db import Cursor, Database, iso
from projections.queries import Page, paginate
from projections.runner import Projection

log = logging.getLogger(__name__)

ON_CALL_ROLES = ("admin", "editor")  # OnCall: only users who may read notifications; never viewers
REFRESH_INTERVAL_SECONDS = 600.0


class SchedulesView(Projection):
    name = "schedules"
    upstream = "config"
    tables = ("schedules", "on_call_shifts", "user_schedule_export_tokens")

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Other configuration events are other views'."""

    @apply.register
    def _(self, e: OnCallSchedule.Created, cur: Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO schedules (id, uuid, type, name, team_id, settings, export_token_hash, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (public_id(PREFIX_SCHEDULE, e.originator_id), str(e.originator_id), e.type, e.settings["name"],
             e.settings.get("team_id"), json.dumps(e.settings), e.export_token_hash, iso(e.created_at)),
        )

    @apply.register
    def _(self, e: OnCallSchedule.Updated, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE schedules SET name = %s, team_id = %s, settings = %s WHERE uuid = %s",
            (e.settings["name"], e.settings.get("team_id"), json.dumps(e.settings), str(e.originator_id)),
        )

    @apply.register(OnCallSchedule.CalendarFetched)
    @apply.register(OnCallSchedule.CalendarUploaded)
    def _(self, e, cur: Cursor, position: int) -> None:
        which = "ical_overrides" if e.which == "overrides" else "ical_primary"
        cur.execute(
            f"UPDATE schedules SET {which} = %s, {which}_fetched_at = %s, ical_error = NULL, ical_error_at = NULL"
            " WHERE uuid = %s",
            (e.text, iso(e.at), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: OnCallSchedule.CalendarFetchFailed, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE schedules SET ical_error = %s, ical_error_at = %s WHERE uuid = %s",
            (f"{e.which}: {e.error}", iso(e.at), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: OnCallSchedule.Deleted, cur: Cursor, position: int) -> None:
        cur.execute("UPDATE schedules SET deleted = 1 WHERE uuid = %s", (str(e.originator_id),))

    @apply.register
    def _(self, e: OnCallShift.Created, cur: Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO on_call_shifts (id, uuid, name, team_id, spec, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (public_id(PREFIX_SHIFT, e.originator_id), str(e.originator_id), e.spec["name"], e.spec.get("team_id"),
             json.dumps(e.spec), iso(e.created_at)),
        )

    @apply.register
    def _(self, e: OnCallShift.Updated, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE on_call_shifts SET name = %s, team_id = %s, spec = %s WHERE uuid = %s",
            (e.spec["name"], e.spec.get("team_id"), json.dumps(e.spec), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: OnCallShift.Deleted, cur: Cursor, position: int) -> None:
        cur.execute("UPDATE on_call_shifts SET deleted = 1 WHERE uuid = %s", (str(e.originator_id),))

    @apply.register
    def _(self, e: UserScheduleExport.Issued, cur: Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO user_schedule_export_tokens (user_id, uuid, token_hash, created_at) VALUES (%s, %s, %s, %s)",
            (e.user_id, str(e.originator_id), e.token_hash, iso(e.at)),
        )

    @apply.register
    def _(self, e: UserScheduleExport.Reissued, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE user_schedule_export_tokens SET token_hash = %s, created_at = %s, revoked_at = NULL WHERE uuid = %s",
            (e.token_hash, iso(e.at), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: UserScheduleExport.Revoked, cur: Cursor, position: int) -> None:
        cur.execute("UPDATE user_schedule_export_tokens SET revoked_at = %s WHERE uuid = %s",
                    (iso(e.at), str(e.originator_id)))


# --- queries ------------------------------------------------------------------------------------


def _schedule(row: dict | None) -> dict | None:
    return {**row, "settings": json.loads(row["settings"])} if row else None


def _shift(row: dict | None) -> dict | None:
    return {**row, "spec": json.loads(row["spec"])} if row else None


def _filters(filters: dict) -> tuple[list[str], list]:
    where, params = ["deleted = 0"], []
    if filters.get("name") is not None:
        where.append("name = %s")
        params.append(filters["name"])
    if "team_id" in filters:
        if filters["team_id"] in (None, "null"):
            where.append("team_id IS NULL")
        else:
            where.append("team_id = %s")
            params.append(filters["team_id"])
    return where, params


def schedules_page(db: Database, filters: dict, number: int, size: int) -> Page:
    where, params = _filters(filters)
    page = paginate(db, "SELECT * FROM schedules", where, params, "created_at, id", number, size)
    return Page([_schedule(r) for r in page.rows], page.count, page.number, page.size)


def schedule_by_id(db: Database, schedule_id: str) -> dict | None:
    return _schedule(db.query_one("SELECT * FROM schedules WHERE id = %s AND deleted = 0", (schedule_id,)))


def live_schedules(db: Database) -> list[dict]:
    return [_schedule(r) for r in db.query("SELECT * FROM schedules WHERE deleted = 0 ORDER BY created_at, id")]


def shifts_page(db: Database, filters: dict, number: int, size: int) -> Page:
    where, params = _filters(filters)
    if filters.get("schedule_id") is not None:
        schedule = schedule_by_id(db, filters["schedule_id"])
        ids = schedule["settings"].get("shifts", []) if schedule else []
        where.append(f"id IN ({', '.join(['%s'] * len(ids))})" if ids else "1 = 0")
        params.extend(ids)
    page = paginate(db, "SELECT * FROM on_call_shifts", where, params, "created_at, id", number, size)
    return Page([_shift(r) for r in page.rows], page.count, page.number, page.size)


def shift_by_id(db: Database, shift_id: str) -> dict | None:
    return _shift(db.query_one("SELECT * FROM on_call_shifts WHERE id = %s AND deleted = 0", (shift_id,)))


def shifts_by_ids(db: Database, shift_ids: list[str]) -> dict[str, dict]:
    if not shift_ids:
        return {}
    marks = ", ".join(["%s"] * len(shift_ids))
    rows = db.query(f"SELECT * FROM on_call_shifts WHERE deleted = 0 AND id IN ({marks})", list(shift_ids))
    return {row["id"]: _shift(row) for row in rows}


def shift_name_taken(db: Database, name: str, except_id: str | None = None) -> bool:
    row = db.query_one("SELECT id FROM on_call_shifts WHERE deleted = 0 AND name = %s", (name,))
    return row is not None and row["id"] != except_id


def schedules_using_shift(db: Database, shift_id: str) -> list[dict]:
    return [s for s in live_schedules(db) if shift_id in s["settings"].get("shifts", [])]


def web_schedule_zone(db: Database, shift_id: str) -> str | None:
    """The time zone of the (first) web schedule a shift belongs to; None if it is in none. Such
    shifts are OnCall's web rotations, whose edits keep their past."""
    for schedule in schedules_using_shift(db, shift_id):
        if schedule["type"] == "web":
            return schedule["settings"].get("time_zone") or "UTC"
    return None


def live_user_ids(db: Database, user_ids: list[str]) -> set[str]:
    if not user_ids:
        return set()
    marks = ", ".join(["%s"] * len(user_ids))
    return {r["id"] for r in db.query(f"SELECT id FROM users WHERE deleted = 0 AND id IN ({marks})", list(user_ids))}


def user_export_token(db: Database, user_id: str) -> dict | None:
    """The user's active export token (its digest and when it was made), if any."""
    return db.query_one(
        "SELECT user_id, token_hash, created_at, revoked_at FROM user_schedule_export_tokens"
        " WHERE user_id = %s AND revoked_at IS NULL", (user_id,))


def directory(db: Database) -> Directory:
    """Live users; only admins and editors may be on call."""
    rows = db.query("SELECT id, username, email, role FROM users WHERE deleted = 0")
    return Directory(ScheduleUser(r["id"], r["username"], r["email"], r["role"] in ON_CALL_ROLES) for r in rows)


@lru_cache(maxsize=64)
def _parsed(text: str, is_overrides: bool) -> ImportedCalendar:
    return ImportedCalendar(text, is_overrides=is_overrides)


def engine_schedule(db: Database, row: dict) -> Schedule:
    """The engine's schedule for a read-model row: its live shifts and the last good copies of
    the calendars it names."""
    settings = row["settings"]
    shifts = shifts_by_ids(db, settings.get("shifts", []))
    calendars = []
    for which in configured_calendars(row["type"], settings):
        if row.get(f"ical_{which}"):
            calendars.append(_parsed(row[f"ical_{which}"], which == "overrides"))
    return Schedule(
        settings.get("time_zone") or "UTC",
        tuple(version for shift_id in settings.get("shifts", []) if shift_id in shifts
              for version in shift_versions(shift_id, shifts[shift_id]["spec"])),
        tuple(calendars),
    )


# --- calendars by URL ---------------------------------------------------------------------------


def calendar_urls(row: dict) -> dict[str, str]:
    settings = row["settings"]
    urls = {}
    if row["type"] == "ical" and settings.get("ical_url_primary"):
        urls["primary"] = settings["ical_url_primary"]
    if row["type"] in ("ical", "calendar") and settings.get("ical_url_overrides"):
        urls["overrides"] = settings["ical_url_overrides"]
    return urls


def refresh_calendar(config, row: dict, which: str, url: str, fetch: Callable[[str], bytes] = fetch_calendar,
                     now: datetime | None = None) -> int | None:
    """Fetch one calendar and record the copy, or the failure (the last good copy stays)."""
    now = now or datetime.now(UTC)
    try:
        body = fetch(url)
        ImportedCalendar(body)  # only a calendar the engine can read replaces the last good copy
        text = body.decode("utf-8")
    except (FetchError, IcalError) as error:
        return config.record_calendar_fetch(UUID(row["uuid"]), which, now, error=str(error)[:500], url=url)
    return config.record_calendar_fetch(UUID(row["uuid"]), which, now, text=text, url=url)


def refresh_calendars(db: Database, config, fetch: Callable[[str], bytes] = fetch_calendar,
                      due: Callable[[tuple], bool] = lambda key: True) -> list[int]:
    """Fetch the schedules' calendars by URL that are ``due`` (by schedule id, calendar and URL);
    the positions of what was recorded."""
    positions = []
    for row in live_schedules(db):
        for which, url in calendar_urls(row).items():
            if not due((row["id"], which, url)):
                continue
            try:
                position = refresh_calendar(config, row, which, url, fetch)
            except Exception:  # one schedule's trouble (deleted meanwhile, say) stops no other
                log.exception("refreshing calendar %s of schedule %s failed", which, row["id"])
                continue
            if position is not None:
                positions.append(position)
    return positions


def refresh_calendars_forever(db: Database, config, stop: threading.Event,
                              interval: float = REFRESH_INTERVAL_SECONDS, look_every: float = 5.0,
                              fetch: Callable[[str], bytes] = fetch_calendar) -> None:
    """OnCall refreshes calendars every 10 minutes; so does this, off the request path. A new
    schedule, or a changed URL, is fetched within ``look_every`` seconds."""
    last_fetch: dict[tuple, float] = {}

    def due(key: tuple) -> bool:
        now = time.monotonic()
        if now - last_fetch.get(key, -interval) < interval:
            return False
        last_fetch[key] = now
        return True

    while not stop.is_set():
        try:
            refresh_calendars(db, config, fetch, due)
        except Exception:
            log.exception("calendar refresh failed")
        stop.wait(look_every)


# --- the log's answer for a past instant --------------------------------------------------------


def on_call_from_log(db: Database, config, schedule_id: str, moment: datetime) -> frozenset[str]:
    """Who was on call at ``moment`` by the schedule, shifts, calendars and users as the events
    recorded up to then left them: independent of any later change and of the read models'
    current rows (which only say which aggregates exist)."""
    row = db.query_one("SELECT uuid FROM schedules WHERE id = %s", (schedule_id,))
    if row is None:
        return frozenset()
    schedule: OnCallSchedule | None = config.as_of(UUID(row["uuid"]), moment)
    if schedule is None or schedule.deleted:
        return frozenset()
    users = []
    for user_row in db.query("SELECT uuid FROM users"):
        user: User | None = config.as_of(UUID(user_row["uuid"]), moment)
        if user is not None and not user.deleted:
            users.append(ScheduleUser(public_id(PREFIX_USER, user.id), user.username, user.email,
                                      user.role in ON_CALL_ROLES))
    shift_ids = schedule.settings.get("shifts", [])
    shifts = []
    if shift_ids:
        marks = ", ".join(["%s"] * len(shift_ids))
        uuids = {r["id"]: r["uuid"] for r in db.query(f"SELECT id, uuid FROM on_call_shifts WHERE id IN ({marks})", shift_ids)}
        for shift_id in shift_ids:
            shift = config.as_of(UUID(uuids[shift_id]), moment) if shift_id in uuids else None
            if shift is not None and not shift.deleted:
                shifts.extend(shift_versions(shift_id, shift.spec))
    calendars = tuple(
        _parsed(schedule.calendars[which]["text"], which == "overrides")
        for which in configured_calendars(schedule.type, schedule.settings) if which in schedule.calendars
    )
    engine = Schedule(schedule.settings.get("time_zone") or "UTC", tuple(shifts), calendars)
    return on_call_at(engine, moment, Directory(users))
