"""``/api/v1/schedules/``: OnCall's schedules (``calendar``, ``web``, ``ical``) with
``on_call_now``, their final shifts, and the final schedule as an iCal feed.

Beyond OnCall's shape each schedule says what the next 30 days lack (``gaps``,
``empty_shifts``), a schedule with calendars which names in them match no user
(``missing_users``), and an ical schedule how its last fetch went (``ical_last_fetched_at``,
``ical_error``).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from flask import Response, jsonify, request

from adapters.ical_fetch import FetchError, check_calendar_url
from domain.configuration import token_digest
from domain.ids import public_id
from domain.schedules import (
    COVERAGE_HORIZON,
    MAX_WINDOW,
    OVERRIDE,
    IcalError,
    coverage,
    export_calendar,
    final_shifts,
    on_call_at,
)
from domain.schedules.aggregates import PREFIX_SCHEDULE, SCHEDULE_TYPES
from domain.schedules.shifts import MAX_YEAR, MIN_YEAR
from domain.users import is_timezone
from projections.schedules import (
    directory,
    engine_schedule,
    live_schedules,
    schedule_by_id,
    schedules_page,
    shifts_by_ids,
)
from web import runtime
from web.api import (
    found,
    _caller,
    api,
    bad_request,
    not_found,
    page_params,
    paginated,
    requires,
)
from web.api.on_call_shifts import _team, _text, field_error, json_object

MAX_NAME_LENGTH = 512
MAX_URL_LENGTH = 2000
MAX_SHIFTS = 500
FINAL_SHIFTS_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%d")
EXPORT_PAST = timedelta(days=15)  # OnCall's window for the exported final schedule
EXPORT_FUTURE = timedelta(days=183)
WRITABLE = ("name", "team_id", "time_zone", "shifts", "ical_url_primary", "ical_url_overrides", "enable_web_overrides")


def _url(data: dict, field: str, required: bool) -> str | None:
    value = data.get(field)
    if value in (None, ""):
        if required:
            raise field_error(field, "This field is required.")
        return None
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        raise field_error(field, "Enter a valid URL.")
    try:
        check_calendar_url(value)
    except FetchError:
        raise field_error(field, "Enter a valid URL.")
    return value


def _shift_ids(data: dict, team_id: str | None, schedule_type: str) -> list[str]:
    ids = data.get("shifts") or []
    if not isinstance(ids, list) or len(ids) > MAX_SHIFTS or not all(isinstance(i, str) and len(i) < 100 for i in ids):
        raise field_error("shifts", f"Expected a list of at most {MAX_SHIFTS} shift ids.")
    ids = list(dict.fromkeys(ids))
    found = shifts_by_ids(runtime().db, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise field_error("shifts", f'Invalid pk "{missing[0]}" - object does not exist.')
    for shift in found.values():
        if shift["spec"].get("team_id") != team_id:
            raise bad_request("Shifts must be assigned to the same team as the schedule")
        if schedule_type == "calendar" and shift["spec"]["type"] == OVERRIDE:
            raise bad_request("Shifts of type override are not supported in this schedule")
    return ids


def schedule_settings(body: dict, schedule_type: str, before: dict | None = None) -> dict:
    data = {**(before or {}), **{k: v for k, v in body.items() if k in WRITABLE}}
    if data.get("name") is None:
        raise field_error("name", "This field is required.")
    settings = {"name": _text(data, "name", MAX_NAME_LENGTH), "team_id": _team(data.get("team_id"))}
    if schedule_type in ("calendar", "web"):
        time_zone = data.get("time_zone")
        if time_zone is None and schedule_type == "calendar":
            raise field_error("time_zone", "This field is required.")
        time_zone = time_zone or "UTC"
        if not isinstance(time_zone, str) or not is_timezone(time_zone):
            raise field_error("time_zone", "Invalid timezone")
        settings["time_zone"] = time_zone
        settings["shifts"] = _shift_ids(data, settings["team_id"], schedule_type)
    if schedule_type == "ical":
        settings["ical_url_primary"] = _url(data, "ical_url_primary", required=True)
    if schedule_type in ("ical", "calendar"):
        settings["ical_url_overrides"] = _url(data, "ical_url_overrides", required=False)
    if schedule_type == "calendar":
        enable = data.get("enable_web_overrides", False)
        if not isinstance(enable, bool):
            raise field_error("enable_web_overrides", "Must be a valid boolean.")
        settings["enable_web_overrides"] = enable
    return settings


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def serialise(row: dict, users, now: datetime) -> dict:
    settings = row["settings"]
    result = {"id": row["id"], "type": row["type"], "team_id": settings.get("team_id"), "name": settings["name"]}
    if row["type"] in ("calendar", "web"):
        result["time_zone"] = settings.get("time_zone", "UTC")
        live = shifts_by_ids(runtime().db, settings.get("shifts", []))
        result["shifts"] = [i for i in settings.get("shifts", []) if i in live]
    if row["type"] == "ical":
        result["ical_url_primary"] = settings.get("ical_url_primary")
    if row["type"] in ("ical", "calendar"):
        result["ical_url_overrides"] = settings.get("ical_url_overrides")
    if row["type"] == "calendar":
        result["enable_web_overrides"] = settings.get("enable_web_overrides", False)
    result["slack"] = {"channel_id": None, "user_group_id": None}
    schedule = engine_schedule(runtime().db, row)
    try:
        result["on_call_now"] = sorted(on_call_at(schedule, now, users))
        report = coverage(schedule, now, users)
        result["has_gaps"] = bool(report.gaps)
        result["gaps"] = [{"start": _iso(a), "end": _iso(b)} for a, b in report.gaps]
        result["empty_shifts"] = [{"shift_id": o.source, "start": _iso(o.start), "end": _iso(o.end)}
                                  for o in report.empty_shifts]
        if schedule.calendars:  # names in calendar events that match no user (OnCall's "missing users")
            result["missing_users"] = schedule.unmatched_names(now, now + COVERAGE_HORIZON, users)
    except IcalError as error:  # a calendar with too many events: say so, answer the rest
        result.update(on_call_now=[], has_gaps=True, gaps=[], empty_shifts=[], ical_error=str(error))
    if row["type"] == "ical" or row.get("ical_error"):
        result["ical_last_fetched_at"] = row.get("ical_primary_fetched_at") or row.get("ical_overrides_fetched_at")
        result.setdefault("ical_error", row.get("ical_error"))
    return result


def _schedule_or_404(schedule_id: str) -> dict:
    return found(schedule_by_id, schedule_id)


@api.get("/schedules/", strict_slashes=False)
def list_schedules():
    filters = {"name": request.args.get("name")}
    if "team_id" in request.args:
        filters["team_id"] = request.args["team_id"]
    number, size = page_params()
    db = runtime().db
    page = schedules_page(db, filters, number, size)
    users, now = directory(db), datetime.now(UTC)
    return jsonify(paginated(page, [serialise(row, users, now) for row in page.rows]))


@api.get("/schedules/<schedule_id>/", strict_slashes=False)
def get_schedule(schedule_id: str):
    return jsonify(serialise(_schedule_or_404(schedule_id), directory(runtime().db), datetime.now(UTC)))


@api.post("/schedules/", strict_slashes=False)
@requires("admin")
def create_schedule():
    body = json_object()
    schedule_type = body.get("type")
    if schedule_type is None:
        raise field_error("type", "This field is required.")
    if schedule_type not in SCHEDULE_TYPES:
        raise bad_request("Invalid schedule type")
    settings = schedule_settings(body, schedule_type)
    export_token = secrets.token_hex(32)
    rt = runtime()
    schedule, position = rt.config.create_schedule(schedule_type, settings, token_digest(export_token),
                                                   at=datetime.now(UTC))
    rt.wait_for("config", position)
    row = _schedule_or_404(public_id(PREFIX_SCHEDULE, schedule.id))
    result = serialise(row, directory(rt.db), datetime.now(UTC))
    # Shown once, as API tokens are: a calendar app subscribes with it.
    result["export_url"] = f"{rt.settings.base_url}/api/v1/schedules/{row['id']}/export?token={export_token}"
    return jsonify(result), 201


@api.route("/schedules/<schedule_id>/", methods=["PUT", "PATCH"], strict_slashes=False)
@requires("admin")
def update_schedule(schedule_id: str):
    row = _schedule_or_404(schedule_id)
    if row["type"] == "web":
        raise bad_request("Web schedule update is not enabled through API")
    settings = schedule_settings(json_object(), row["type"], before=row["settings"])
    rt = runtime()
    try:
        position = rt.config.update_schedule(UUID(row["uuid"]), settings)
    except AggregateNotFoundError:
        not_found()
    rt.wait_for("config", position)
    return jsonify(serialise(_schedule_or_404(schedule_id), directory(rt.db), datetime.now(UTC)))


@api.delete("/schedules/<schedule_id>/", strict_slashes=False)
@requires("admin")
def delete_schedule(schedule_id: str):
    row = _schedule_or_404(schedule_id)
    rt = runtime()
    try:
        position = rt.config.delete_schedule(UUID(row["uuid"]), at=datetime.now(UTC))
    except AggregateNotFoundError:
        not_found()
    rt.wait_for("config", position)
    return Response(status=204)


def _date_param(name: str) -> datetime:
    value = request.args.get(name)
    if not value:
        raise field_error(name, "This field is required.")
    for form in FINAL_SHIFTS_FORMATS:
        try:
            moment = datetime.strptime(value[:40], form).replace(tzinfo=UTC)
        except ValueError:
            continue
        if not MIN_YEAR <= moment.year <= MAX_YEAR:
            raise field_error(name, f"Dates must be between the years {MIN_YEAR} and {MAX_YEAR}.")
        return moment
    raise field_error(name, "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm, YYYY-MM-DD.")


@api.get("/schedules/<schedule_id>/final_shifts", strict_slashes=False)
def schedule_final_shifts(schedule_id: str):
    row = _schedule_or_404(schedule_id)
    start, end = _date_param("start_date"), _date_param("end_date")
    if start > end:
        raise bad_request({"non_field_errors": ["start_date must be less than or equal to end_date"]})
    if end - start > MAX_WINDOW:
        raise bad_request({"non_field_errors": [
            "The difference between start_date and end_date must be less than one year (365 days)"]})
    db = runtime().db
    users = directory(db)
    try:
        shifts = final_shifts(engine_schedule(db, row), start, end, users)
    except IcalError as error:
        raise bad_request(str(error))
    results = [
        {"user_pk": s.user_id, "user_email": users.by_id[s.user_id].email,
         "user_username": users.by_id[s.user_id].username, "shift_start": _iso(s.start), "shift_end": _iso(s.end)}
        for s in shifts
    ]
    # OnCall's pseudo-paginated shape: everything on one page.
    return jsonify({"count": len(results), "next": None, "previous": None, "results": results,
                    "current_page_number": 1, "page_size": 50, "total_pages": 1})


@api.get("/schedules/<schedule_id>/export", strict_slashes=False)
def export_schedule(schedule_id: str):
    """The final schedule (15 days back, 6 months ahead) as iCal, for a calendar app: authorised
    by the schedule's export token (``?token=``) or by an API token."""
    row = schedule_by_id(runtime().db, schedule_id)
    token = request.args.get("token", "")
    allowed = row is not None and (
        (token and secrets.compare_digest(token_digest(token), row["export_token_hash"]))
        or _caller(request.headers.get("Authorization", "")) is not None
    )
    if not allowed:
        return jsonify({"detail": "Invalid token."}), 403
    db = runtime().db
    users, now = directory(db), datetime.now(UTC)
    try:
        shifts = final_shifts(engine_schedule(db, row), now - EXPORT_PAST, now + EXPORT_FUTURE, users)
    except IcalError as error:
        raise bad_request(str(error))
    body = export_calendar(shifts, users, row["settings"]["name"], now, schedule_id=row["id"])
    return Response(body, mimetype="text/calendar")


def schedule_metrics(family, label) -> list[str]:
    """Per live schedule, what the next 30 days lack: seconds with nobody on call, and shifts
    whose users may not be on call (OnCall's gap and empty-shift checks, as series)."""
    db = runtime().db
    users, now = directory(db), datetime.now(UTC)
    gaps, empty = [], []
    for row in live_schedules(db):
        try:
            report = coverage(engine_schedule(db, row), now, users)
        except IcalError:  # said in the schedule's ical_error; no number is better than a wrong one
            continue
        series = f'{{schedule="{label(row["id"])}"}}'
        gaps.append(f"tocsin_schedule_gap_seconds{series} {sum(int((b - a).total_seconds()) for a, b in report.gaps)}")
        empty.append(f"tocsin_schedule_empty_shifts{series} {len(report.empty_shifts)}")
    return (family("tocsin_schedule_gap_seconds", "gauge", "Seconds in the next 30 days with nobody on call.") + gaps
            + family("tocsin_schedule_empty_shifts", "gauge",
                     "Shifts in the next 30 days whose users may not be on call (viewers, deleted users).") + empty)
