"""``/api/v1/schedules/``: OnCall's schedules (``calendar``, ``web``, ``ical``) with
``on_call_now``, their final shifts, and the final schedule as an iCal feed.

Beyond OnCall's shape each schedule says what the next 30 days lack (``gaps``,
``empty_shifts``), a schedule with calendars which names in them match no user
(``missing_users``), and an ical schedule how its last fetch went (``ical_last_fetched_at``,
``ical_error``). An ical schedule's calendars may also be given as text (``ical_file_primary``,
``ical_file_overrides``, write-only) instead of by URL.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID

from flask import Response, g, jsonify, request
from marshmallow import Schema, fields, validate

from adapters.ical_fetch import FetchError, check_calendar_url
from domain.configuration import token_digest
from domain.ids import public_id
from domain.schedules import (
    COVERAGE_HORIZON,
    MAX_WINDOW,
    OVERRIDE,
    Directory,
    IcalError,
    ImportedCalendar,
    coverage,
    export_calendars,
    final_shifts,
    on_call_at,
)
from domain.schedules.aggregates import (
    CALENDARS,
    PREFIX_SCHEDULE,
    SCHEDULE_TYPES,
    digest,
)
from domain.schedules.shifts import MAX_YEAR, MIN_YEAR
from domain.users import is_timezone
from projections.schedules import (
    directory,
    engine_schedule,
    live_schedules,
    schedule_by_id,
    schedules_page,
    shifts_by_ids,
    user_export_token,
)
from projections.users import user_by_id
from web import runtime
from web.api import (
    _caller,
    api,
    bad_request,
    config_change,
    found,
    json_object,
    page_params,
    paginated,
    requires,
)
from web.api.on_call_shifts import _team, _text, field_error
from web.api.schemas import PageSchema
from web.api.users import export_token_status

MAX_NAME_LENGTH = 512
MAX_URL_LENGTH = 2000
MAX_SHIFTS = 500
FINAL_SHIFTS_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%d")
EXPORT_PAST = timedelta(days=15)  # OnCall's window for the exported final schedule
EXPORT_FUTURE = timedelta(days=183)
# A calendar given as text: a year of a big team's rota is well under this; the request body
# limit (2 MiB by default) stops larger bodies before they are read.
MAX_CALENDAR_CHARACTERS = 1024 * 1024
MAX_ERROR_LENGTH = 500  # a parser's reason may quote the offending line
WRITABLE = ("name", "team_id", "time_zone", "shifts", "ical_url_primary", "ical_url_overrides", "ical_file_primary",
            "ical_file_overrides", "enable_web_overrides")


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


def _calendar_text(body: dict, field: str, now: datetime) -> str:
    """A calendar given as text: bounded, storable, and readable by the engine over the next 30
    days; 400 with the parser's reason otherwise."""
    value = _text(body, field, MAX_CALENDAR_CHARACTERS)
    try:
        ImportedCalendar(value).occurrences(now, now + COVERAGE_HORIZON, Directory())
    except IcalError as error:
        raise field_error(field, str(error)[:MAX_ERROR_LENGTH])
    return value


def _calendars(body: dict, before: dict, schedule_type: str, now: datetime) -> tuple[dict, dict[str, str]]:
    """Each calendar the type takes, by URL or as text (one or the other; the one given last
    replaces the other): the settings, and the texts to record as uploads."""
    kinds = CALENDARS if schedule_type == "ical" else ("overrides",) if schedule_type == "calendar" else ()
    settings, uploads = {}, {}
    for which in kinds:
        url_field, file_field = f"ical_url_{which}", f"ical_file_{which}"
        url_given = body.get(url_field) not in (None, "")
        file_given = body.get(file_field) not in (None, "")
        if url_given and file_given:
            raise bad_request({file_field: [f"Give either {url_field} or {file_field}, not both."]})
        if file_given:
            uploads[which] = _calendar_text(body, file_field, now)
            settings[url_field], settings[file_field] = None, digest(uploads[which])
        elif url_given:
            settings[url_field], settings[file_field] = _url(body, url_field, required=True), None
        else:  # kept unless cleared (null or "")
            settings[url_field] = None if url_field in body else before.get(url_field)
            settings[file_field] = None if file_field in body else before.get(file_field)
        if which == "primary" and not (settings[url_field] or settings[file_field]):
            raise field_error(url_field, "This field is required.")
    return settings, uploads


def schedule_settings(body: dict, schedule_type: str, before: dict | None = None,
                      now: datetime | None = None) -> tuple[dict, dict[str, str]]:
    """The stored settings from a request (merged over ``before`` on update), and the calendars
    given as text; 400 with OnCall's texts otherwise."""
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
    calendars, uploads = _calendars(body, before or {}, schedule_type, now or datetime.now(UTC))
    settings.update(calendars)
    if schedule_type == "calendar":
        enable = data.get("enable_web_overrides", False)
        if not isinstance(enable, bool):
            raise field_error("enable_web_overrides", "Must be a valid boolean.")
        settings["enable_web_overrides"] = enable
    return settings, uploads


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
    now = datetime.now(UTC)
    settings, uploads = schedule_settings(body, schedule_type, now=now)
    export_token = secrets.token_hex(32)
    rt = runtime()
    schedule, position = rt.config.create_schedule(schedule_type, settings, token_digest(export_token),
                                                   at=now, uploads=uploads)
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
    now = datetime.now(UTC)
    settings, uploads = schedule_settings(json_object(), row["type"], before=row["settings"], now=now)
    rt = runtime()
    config_change(lambda config: config.update_schedule(UUID(row["uuid"]), settings, uploads, at=now))
    return jsonify(serialise(_schedule_or_404(schedule_id), directory(rt.db), datetime.now(UTC)))


@api.delete("/schedules/<schedule_id>/", strict_slashes=False)
@requires("admin")
def delete_schedule(schedule_id: str):
    row = _schedule_or_404(schedule_id)
    config_change(lambda config: config.delete_schedule(UUID(row["uuid"]), at=datetime.now(UTC)))
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


def _token_matches(token: str, token_hash: str | None) -> bool:
    return bool(token) and token_hash is not None and secrets.compare_digest(token_digest(token), token_hash)


def ical_feed(rows: list[dict], name: str, only_user: str | None = None) -> Response:
    """The final shifts of the schedules in ``rows``, 15 days back and 6 months ahead, as one
    iCal feed; with ``only_user``, that user's shifts only, each titled with its schedule's name."""
    db = runtime().db
    users, now = directory(db), datetime.now(UTC)
    parts = []
    for row in rows:
        try:
            shifts = final_shifts(engine_schedule(db, row), now - EXPORT_PAST, now + EXPORT_FUTURE, users)
        except IcalError as error:
            if only_user is None:
                raise bad_request(str(error))
            continue  # one unreadable calendar does not hide the user's other schedules
        if only_user is not None:
            shifts = [s for s in shifts if s.user_id == only_user]
        parts.append((row["id"], f"{row['settings']['name']}: " if only_user else "", shifts))
    return Response(export_calendars(parts, users, name, now), mimetype="text/calendar")


# One endpoint for both feeds, which the API's token check lets through: each feed checks its
# own export token (``?token=``), as a calendar app cannot send an Authorization header.
@api.get("/users/<user_id>/schedule_export", strict_slashes=False, endpoint="export_schedule")
@api.get("/schedules/<schedule_id>/export", strict_slashes=False)
def export_schedule(schedule_id: str | None = None, user_id: str | None = None):
    """A schedule's final schedule, authorised by its export token or an API token; or, as
    OnCall's ``/users/{id}/schedule_export``, a user's shifts in every schedule, authorised by
    the user's export token (without ``token``, an API caller sees whether one exists)."""
    db = runtime().db
    token = request.args.get("token", "")
    if user_id is not None:
        if "token" not in request.args:
            caller = _caller(request.headers.get("Authorization", ""))
            if caller is None:
                return jsonify({"detail": "Invalid token."}), 403
            g.caller = caller
            return export_token_status(user_id)
        held = user_export_token(db, user_id)
        user = user_by_id(db, user_id)
        if user is None or not _token_matches(token, held and held["token_hash"]):
            return jsonify({"detail": "Invalid token."}), 403
        return ical_feed(live_schedules(db), f"On-Call Schedule for {user['username']}", only_user=user_id)
    row = schedule_by_id(db, schedule_id)
    allowed = row is not None and (
        _token_matches(token, row["export_token_hash"])
        or _caller(request.headers.get("Authorization", "")) is not None
    )
    if not allowed:
        return jsonify({"detail": "Invalid token."}), 403
    return ical_feed([row], row["settings"]["name"])


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
        # Summed before rounding: each gap's fraction of a second (the request's instant) adds up.
        gap_seconds = round(sum((b - a).total_seconds() for a, b in report.gaps))
        gaps.append(f"tocsin_schedule_gap_seconds{series} {gap_seconds}")
        empty.append(f"tocsin_schedule_empty_shifts{series} {len(report.empty_shifts)}")
    return (family("tocsin_schedule_gap_seconds", "gauge", "Seconds in the next 30 days with nobody on call.") + gaps
            + family("tocsin_schedule_empty_shifts", "gauge",
                     "Shifts in the next 30 days whose users may not be on call (viewers, deleted users).") + empty)


# --- the OpenAPI document -----------------------------------------------------------------------


class SlackSchema(Schema):
    channel_id = fields.Constant(None)
    user_group_id = fields.Constant(None)


class GapSchema(Schema):
    start = fields.String()
    end = fields.String()


class EmptyShiftSchema(Schema):
    shift_id = fields.String(metadata={"description": "the shift, or ical_primary / ical_overrides"})
    start = fields.String()
    end = fields.String()


class ScheduleSchema(Schema):
    """OnCall's schedule (the fields of its type), with what the next 30 days lack."""

    id = fields.String()
    type = fields.String(validate=validate.OneOf(SCHEDULE_TYPES))
    team_id = fields.String(allow_none=True)
    name = fields.String()
    time_zone = fields.String(metadata={"description": "calendar and web"})
    shifts = fields.List(fields.String(), metadata={"description": "calendar and web"})
    ical_url_primary = fields.String(allow_none=True, metadata={"description": "ical (null: given as text)"})
    ical_url_overrides = fields.String(allow_none=True, metadata={"description": "ical and calendar"})
    enable_web_overrides = fields.Boolean(metadata={"description": "calendar"})
    slack = fields.Nested(SlackSchema)
    on_call_now = fields.List(fields.String(), metadata={"description": "user ids on call at this instant"})
    has_gaps = fields.Boolean()
    gaps = fields.List(fields.Nested(GapSchema), metadata={"description": "nobody on call, next 30 days"})
    empty_shifts = fields.List(fields.Nested(EmptyShiftSchema),
                               metadata={"description": "shifts whose users may not be on call, next 30 days"})
    missing_users = fields.List(fields.String(), metadata={"description": "calendar names matching no user"})
    ical_last_fetched_at = fields.String(allow_none=True)
    ical_error = fields.String(allow_none=True)
    export_url = fields.String(metadata={"description": "on creation only: the iCal feed with its token"})


class SchedulePageSchema(PageSchema):
    results = fields.List(fields.Nested(ScheduleSchema))


class ScheduleWriteSchema(Schema):
    """A schedule as an admin sends it (``type`` on creation only); on update the fields left
    out are kept. A calendar goes by URL or as text, not both."""

    type = fields.String(required=True, validate=validate.OneOf(SCHEDULE_TYPES))
    name = fields.String(required=True, validate=validate.Length(max=MAX_NAME_LENGTH))
    team_id = fields.String(allow_none=True)
    time_zone = fields.String()
    shifts = fields.List(fields.String(), validate=validate.Length(max=MAX_SHIFTS))
    ical_url_primary = fields.String(allow_none=True, validate=validate.Length(max=MAX_URL_LENGTH))
    ical_url_overrides = fields.String(allow_none=True, validate=validate.Length(max=MAX_URL_LENGTH))
    ical_file_primary = fields.String(allow_none=True, validate=validate.Length(max=MAX_CALENDAR_CHARACTERS),
                                      metadata={"description": "the calendar as iCalendar text"})
    ical_file_overrides = fields.String(allow_none=True, validate=validate.Length(max=MAX_CALENDAR_CHARACTERS))
    enable_web_overrides = fields.Boolean()


class FinalShiftSchema(Schema):
    user_pk = fields.String()
    user_email = fields.String(allow_none=True)
    user_username = fields.String()
    shift_start = fields.String()
    shift_end = fields.String()


class FinalShiftPageSchema(PageSchema):
    results = fields.List(fields.Nested(FinalShiftSchema))


class ExportTokenSchema(Schema):
    created_at = fields.String()
    revoked_at = fields.String(allow_none=True)
    active = fields.Boolean()


class ExportTokenCreatedSchema(Schema):
    token = fields.String()
    created_at = fields.String()
    export_url = fields.String()


def add_to_spec(spec) -> None:
    """``/api/v1/schedules/``, final shifts and the iCal feeds (a schedule's and a user's) in the
    OpenAPI document."""
    from web.api.openapi import _errors, _ok, _path_id, _query

    for name, schema in (
        ("Schedule", ScheduleSchema),
        ("SchedulePage", SchedulePageSchema),
        ("ScheduleWrite", ScheduleWriteSchema),
        ("FinalShiftPage", FinalShiftPageSchema),
        ("ExportToken", ExportTokenSchema),
        ("ExportTokenCreated", ExportTokenCreatedSchema),
    ):
        spec.components.schema(name, schema=schema)
    body = {"required": True, "content": {"application/json": {"schema": "ScheduleWrite"}}}
    calendar = {"text/calendar": {"schema": {"type": "string"}}}
    token = {"in": "query", "name": "token", "required": False, "schema": {"type": "string"},
             "description": "the export token (a calendar app sends no Authorization header)"}
    spec.path(
        "/api/v1/schedules/",
        operations={
            "get": {"summary": "List schedules with who is on call now: name matches exactly, team_id=null: "
                               "no team; 50 a page",
                    "parameters": _query(("name", "team_id", "page", "perpage")), "responses": _ok("SchedulePage")},
            "post": {"summary": "Create a schedule (admins): calendar, web, or ical (calendars by URL, "
                                "refreshed every 10 minutes, or as text)",
                     "requestBody": body, "responses": _ok("Schedule", "201")},
        },
    )  # fmt: skip
    spec.path(
        "/api/v1/schedules/{id}/", parameters=_path_id("id"),
        operations={
            "get": {"summary": "Get a schedule", "responses": _ok("Schedule")},
            "put": {"summary": "Update (admins; fields left out are kept; web schedules cannot be)",
                    "requestBody": body, "responses": _ok("Schedule")},
            "patch": {"summary": "Update (admins)", "requestBody": body, "responses": _ok("Schedule")},
            "delete": {"summary": "Delete (admins)", "responses": {"204": {"description": "Deleted"}, **_errors()}},
        },
    )  # fmt: skip
    dates = [{"in": "query", "name": name, "required": True, "schema": {"type": "string"},
              "description": "YYYY-MM-DD or YYYY-MM-DDThh:mm (UTC); at most 365 days apart"}
             for name in ("start_date", "end_date")]
    spec.path(
        "/api/v1/schedules/{id}/final_shifts", parameters=_path_id("id"),
        operations={"get": {"summary": "Who is on call when, in the window (OnCall's one-page shape)",
                            "parameters": dates, "responses": _ok("FinalShiftPage")}},
    )  # fmt: skip
    spec.path(
        "/api/v1/schedules/{id}/export", parameters=_path_id("id"),
        operations={"get": {
            "summary": "The final schedule, 15 days back to 6 months ahead, as iCal: by the schedule's export "
                       "token (its export_url) or an API token",
            "parameters": [token], "security": [{}, {"token": []}],
            "responses": {"200": {"description": "A calendar", "content": calendar}, **_errors()},
        }},
    )  # fmt: skip
    spec.path(
        "/api/v1/users/{id}/schedule_export", parameters=_path_id("id"),
        operations={
            "get": {"summary": "With token: the user's shifts in every schedule as iCal (OnCall's URL). Without: "
                               "whether the user has an export token (the user or an admin)",
                    "parameters": [token], "security": [{}, {"token": []}],
                    "responses": {"200": {"description": "A calendar (with token), or the token's state",
                                          "content": {**calendar,
                                                      "application/json": {"schema": "ExportToken"}}},
                                  **_errors()}},
            "post": {"summary": "A new export token, shown once, and the URL to subscribe to (the user or an admin)",
                     "responses": {**_ok("ExportTokenCreated", "201"),
                                   "409": {"description": "The user already has one",
                                           "content": {"application/json": {"schema": "Error"}}}}},
            "delete": {"summary": "Revoke the user's export token at once (the user or an admin)",
                       "responses": {"204": {"description": "Revoked"}, **_errors()}},
        },
    )  # fmt: skip
