"""The dashboard's pages. They read the read models and call the API's own commands."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode
from uuid import UUID

from flask import (
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from marshmallow import ValidationError

from adapters.expiring_cache import ExpiringCache
from adapters.render_pool import Done
from domain.alert_group import ActionRefused
from domain.configuration import token_digest
from domain.heartbeat import DEFAULT_TIMEOUT, STATUS_NOT_ARMED
from domain.integrations import INTEGRATION_TYPES, TEMPLATE_FIELDS, effective_templates
from domain.integrations.preview import web_message
from projections import insights as read
from projections.db import iso
from projections.queries import (
    Page,
    alert_group,
    api_token_by_hash,
    integration_by_id,
    integrations_page,
    timeline,
)
from web import runtime
from web.api import ApiError
from web.api.alert_groups import act_on_group
from web.api.integrations import create_from, serialise
from web.api.schemas import IntegrationWriteSchema, flatten_templates, storable_text
from web.api.template_preview import _alert_to_preview, preview_field, submit_demo_alert
from web.dashboard import (
    current_user,
    dashboard,
    not_found,
    refuse,
    requires,
    safe_next,
    sign_in_as,
    wants_fragment,
)
from web.dashboard.charts import STATE_LABELS, STATE_ORDER, human_duration, stacked_bars

PAGE_SIZE = 25
MAX_PAGE = 1_000_000
ALERTS_SHOWN = 50
MAX_TOKEN_LENGTH = 200
# OnCall's silence choices (seconds; -1: forever).
SILENCE_OPTIONS = {
    1800: "30 minutes", 3600: "1 hour", 7200: "2 hours", 10800: "3 hours", 14400: "4 hours",
    21600: "6 hours", 43200: "12 hours", 57600: "16 hours", 72000: "20 hours", 86400: "24 hours",
    -1: "Forever",
}
ACTIONS = ("acknowledge", "unacknowledge", "resolve", "unresolve", "silence", "unsilence")
INSIGHT_PERIODS = {7: "Last 7 days", 30: "Last 30 days", 90: "Last 90 days"}
EDITOR_FIELDS = ("web.title", "web.message", "grouping_key", "resolve_signal", "acknowledge_signal", "source_link")
FILTER_NAMES = ("state", "integration", "from", "to", "q")
LIST_CACHE_SECONDS = 60.0
LISTS_EXTENSION = "tocsin_dashboard_lists"
NAMES_CACHE_SECONDS = 5.0
NAMES_EXTENSION = "tocsin_dashboard_integration_names"


class BadFilter(ValueError):
    pass


@dataclass(frozen=True)
class Live:
    """A page's live part, rendered, and a digest of it: the page's script swaps the part in only
    when a poll's digest differs from the one it shows (``X-Live-Version``)."""

    html: Markup
    version: str

    def response(self, status: int = 200) -> Response:
        return Response(self.html, status=status, headers={"X-Live-Version": self.version})


def _live(template: str, context: dict) -> Live:
    html = render_template(template, **context)
    return Live(Markup(html), hashlib.sha256(html.encode()).hexdigest()[:20])


@dashboard.app_template_filter("duration")
def _duration(seconds):
    return human_duration(seconds)


@dashboard.app_template_filter("when")
def _when(stored: str | None) -> str:
    """Stored ISO text as ``2026-12-01 10:37:44 UTC`` (a <time> element carries the exact value)."""
    if stored and len(stored) == 27 and stored[10] == "T" and stored[-1] == "Z":  # the stored form: cut, not parse
        return f"{stored[:10]} {stored[11:19]} UTC"
    moment = read.parse_time(stored)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "–"


# --- signing in -------------------------------------------------------------------------------


@dashboard.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    next_path = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user() is not None:
            return redirect(next_path)
        return render_template("dashboard/sign_in.html", next=next_path, error=None)
    token = request.form.get("token", "").strip()
    row = None
    if token and len(token) <= MAX_TOKEN_LENGTH and "\x00" not in token:
        row = api_token_by_hash(runtime().db, token_digest(token))
    if row is None:
        page = render_template("dashboard/sign_in.html", next=next_path, error="That token is not valid.")
        return Response(page, status=401)
    sign_in_as(row["token_hash"])
    return redirect(next_path, code=303)


@dashboard.post("/sign-out")
def sign_out():
    session.clear()
    return redirect(url_for("dashboard.sign_in"), code=303)


# --- alert groups -----------------------------------------------------------------------------


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadFilter(f"{name} must be a date such as 2026-12-01")


def _list_filters() -> tuple[dict, dict]:
    """(the query's filters, the form's values) from the URL; ``BadFilter`` for nonsense."""
    args = request.args
    form = {name: args.get(name, "").strip() for name in FILTER_NAMES}
    for name, value in form.items():
        try:
            storable_text(value)
        except ValidationError as invalid:
            raise BadFilter(f"{name}: {invalid.messages[0]}")
    filters: dict = {}
    if form["state"]:
        if form["state"] not in read.STATES:
            raise BadFilter(f"state must be one of {', '.join(read.STATES)}")
        filters["state"] = form["state"]
    if form["integration"]:
        filters["integration_id"] = form["integration"]
    if form["from"]:
        filters["started_after"] = iso(datetime.combine(_day(form["from"], "from"), time(), UTC))
    if form["to"]:  # the whole day named is included
        last = _day(form["to"], "to")
        if last < date.max:  # the last day there is: no end
            filters["started_before"] = iso(datetime.combine(last + timedelta(days=1), time(), UTC))
    if form["q"]:
        if len(form["q"]) > read.MAX_SEARCH_LENGTH:
            raise BadFilter(f"the search can be at most {read.MAX_SEARCH_LENGTH} characters")
        filters["search"] = form["q"]
    return filters, form


def _page_number() -> int:
    try:
        number = int(request.args.get("page", "1"))
    except ValueError:
        return 1
    return min(max(number, 1), MAX_PAGE)


def _list_rows(filters: dict, number: int) -> tuple[Page, dict[str, int]]:
    """A page of groups and the counts per state, read again only when the view has moved on:
    every open list polls, and most polls find nothing new. The counts serve every page of the
    same filters, and give the page its total."""
    db = runtime().db
    # One cache per app (so per database), keyed by the view's version: never stale.
    lists = current_app.extensions.setdefault(LISTS_EXTENSION, ExpiringCache(ttl=LIST_CACHE_SECONDS, maxsize=512))
    version, filtered = read.alert_groups_version(db), tuple(sorted(filters.items()))
    counts = lists.get_or_load((version, filtered), lambda: read.state_counts(db, filters))
    total = counts[filters["state"]] if filters.get("state") else sum(counts.values())
    page = lists.get_or_load(
        (version, filtered, number), lambda: read.group_list_page(db, filters, number, PAGE_SIZE, count=total)
    )
    return page, counts


def _integration_names() -> dict[str, str]:
    """Integration names for the list; a rename shows within NAMES_CACHE_SECONDS (one round
    trip less on every list that changed)."""
    names = current_app.extensions.setdefault(NAMES_EXTENSION, ExpiringCache(ttl=NAMES_CACHE_SECONDS, maxsize=1))
    return names.get_or_load("names", lambda: read.integration_names(runtime().db))


def _list_context() -> dict:
    filters, form = _list_filters()
    db = runtime().db
    page, counts = _list_rows(filters, _page_number())
    kept = {name: value for name, value in form.items() if value}

    def page_link(number: int) -> str:
        return url_for("dashboard.alert_groups") + "?" + urlencode({**kept, "page": number})

    return {
        "page": page,
        "form": form,
        "counts": counts,
        "integrations": _integration_names(),
        "states": STATE_ORDER,
        "state_labels": STATE_LABELS,
        "page_link": page_link,
        "live_url": url_for("dashboard.alert_groups_live") + ("?" + urlencode({**kept, "page": page.number})),
        # Built once, not per row: url_for is a good part of a page's time.
        "group_path": url_for("dashboard.alert_groups") + "alert-groups/",
    }


@dashboard.get("/")
def alert_groups():
    try:
        context = _list_context()
    except BadFilter as bad:
        return refuse(400, f"Invalid filter: {bad}")
    live = _live("dashboard/_group_list.html", context)
    return render_template("dashboard/alert_groups.html", live=live, **context)


@dashboard.get("/alert-groups/live")
def alert_groups_live():
    """The list's live part (counts, rows, pages), polled by the page with the same filters."""
    try:
        context = _list_context()
    except BadFilter as bad:
        return refuse(400, f"Invalid filter: {bad}")
    return _live("dashboard/_group_list.html", context).response()


def _group_or_404(group_id: str) -> dict:
    row = alert_group(runtime().db, group_id)
    if row is None:
        not_found("alert group")
    return row


def _group_live_context(row: dict, error: str | None = None) -> dict:
    return {
        "group": row,
        "entries": timeline(runtime().db, row["id"]),
        "silence_options": SILENCE_OPTIONS,
        "state_labels": STATE_LABELS,
        "error": error,
    }


def _pretty(payload_text: str) -> str:
    try:
        return json.dumps(json.loads(payload_text), indent=2, ensure_ascii=False)
    except ValueError:
        return payload_text


def _permalink(group_id: str) -> str:
    """The group's page at the public base URL (what the API gives as its ``web`` permalink)."""
    return f"{runtime().settings.base_url}{url_for('dashboard.alert_group_page', group_id=group_id)}"


def _safe_link(link: str | None) -> str | None:
    """Only web links become clickable: a sender's ``javascript:`` must not."""
    if link and link.lower().startswith(("https://", "http://")):
        return link
    return None


@dashboard.get("/alert-groups/<group_id>")
def alert_group_page(group_id: str):
    row = _group_or_404(group_id)
    db = runtime().db
    integration = integration_by_id(db, row["integration_id"])
    message = None
    first = read.first_alert_payload(db, row["id"])
    kind = INTEGRATION_TYPES.get(integration["type"]) if integration else None
    if kind is not None and first is not None:
        # As OnCall shows it: the web message rendered from the group's first alert, in a render
        # worker under the same hard limits as ingest and preview (a template is hostile too).
        outcome = runtime().render_pool.run_one(
            web_message, kind.slug, integration["templates"], json.loads(first), integration["name"],
            _permalink(row["id"]),
        )
        message = outcome.value if isinstance(outcome, Done) else "Template Error: rendering was stopped"
    alerts = [{**alert, "pretty": _pretty(alert["payload"])} for alert in read.alerts_of_group(db, row["id"], ALERTS_SHOWN)]
    context = _group_live_context(row)
    return render_template(
        "dashboard/alert_group.html",
        integration=integration,
        message=message,
        source_link=_safe_link(row["source_link"]),
        alerts=alerts,
        live=_live("dashboard/_group_live.html", context),
        **context,
    )


@dashboard.get("/alert-groups/<group_id>/live")
def alert_group_live(group_id: str):
    return _live("dashboard/_group_live.html", _group_live_context(_group_or_404(group_id))).response()


@dashboard.post("/alert-groups/<group_id>/<action>")
@requires("editor")
def alert_group_action(group_id: str, action: str):
    if action not in ACTIONS:
        not_found("action")
    row = _group_or_404(group_id)
    kwargs = {}
    if action == "silence":
        try:
            delay = int(request.form.get("delay", ""))
        except ValueError:
            delay = None
        if delay not in SILENCE_OPTIONS:
            return refuse(400, "Choose how long to silence for.")
        kwargs["delay"] = delay
    error = None
    try:
        act_on_group(row, action, current_user()["name"], **kwargs)
    except ActionRefused as refused:
        error = str(refused)
    if not wants_fragment():
        if error:
            return refuse(400, error)
        return redirect(url_for("dashboard.alert_group_page", group_id=group_id), code=303)
    live = _live("dashboard/_group_live.html", _group_live_context(_group_or_404(group_id), error))
    return live.response(400 if error else 200)


# --- integrations -----------------------------------------------------------------------------


def _integration_or_404(integration_id: str) -> dict:
    row = integration_by_id(runtime().db, integration_id)
    if row is None:
        not_found("integration")
    return row


def _creatable_types() -> list[tuple[str, str]]:
    return sorted(
        ((slug, kind.title) for slug, kind in INTEGRATION_TYPES.items() if slug not in ("direct_paging",)),
        key=lambda item: item[1].lower(),
    )


def _integrations_page(error: str | None = None, status: int = 200) -> Response:
    db = runtime().db
    page = integrations_page(db, None, None, 1, 500)
    counts = read.groups_by_integration_and_state(db)
    rows = []
    for row in page.rows:
        shown = serialise(row)
        open_groups = sum(counts.get((row["id"], state), 0) for state in ("firing", "acknowledged", "silenced"))
        rows.append({**shown, "open_groups": open_groups})
    body = render_template("dashboard/integrations.html", integrations=rows, types=_creatable_types(), error=error)
    return Response(body, status=status)


@dashboard.get("/integrations")
def integrations():
    return _integrations_page()


def _messages(problem) -> str:
    if isinstance(problem, dict):
        return "; ".join(f"{key}: {_messages(value)}" for key, value in problem.items())
    if isinstance(problem, list):
        return " ".join(_messages(value) for value in problem)
    return str(problem)


@dashboard.post("/integrations")
@requires("admin")
def create_integration():
    fields = {"type": request.form.get("type", "")}
    if request.form.get("name", "").strip():
        fields["name"] = request.form["name"].strip()
    try:
        row = create_from(IntegrationWriteSchema().load(fields))
    except ValidationError as invalid:
        return _integrations_page(_messages(invalid.messages), 400)
    except ApiError as refused:
        return _integrations_page(_messages(refused.body.get("detail", refused.body)), refused.status)
    current_app.extensions.pop(NAMES_EXTENSION, None)  # the lists name it at once
    return redirect(url_for("dashboard.integration_page", integration_id=row["id"], created=1), code=303)


def _integration_context(row: dict, error: str | None = None, values: dict | None = None) -> dict:
    shown = serialise(row)
    kind = INTEGRATION_TYPES.get(row["type"])
    effective = effective_templates(kind, row["templates"]) if kind else {}
    editor = []
    for name in TEMPLATE_FIELDS:
        source = (values or {}).get(name, effective.get(name) or "")
        editor.append({"name": name, "source": source, "custom": bool(row["templates"].get(name)),
                       "main": name in EDITOR_FIELDS})
    editor.sort(key=lambda item: (not item["main"], EDITOR_FIELDS.index(item["name"]) if item["main"] else 0))
    counts = read.state_counts(runtime().db, {"integration_id": row["id"]})
    return {
        "integration": shown,
        "row": row,
        "heartbeat": shown.get("heartbeat"),
        "heartbeat_timeout": row.get("heartbeat_timeout_seconds") or DEFAULT_TIMEOUT,
        "heartbeat_status": row.get("heartbeat_status") or STATUS_NOT_ARMED,
        "can_demo": kind is not None and kind.example_payload is not None,
        "editor": editor,
        "counts": counts,
        "state_labels": STATE_LABELS,
        "error": error,
        "created": request.args.get("created") == "1",
        "saved": request.args.get("saved") == "1",
    }


@dashboard.get("/integrations/<integration_id>")
def integration_page(integration_id: str):
    return render_template("dashboard/integration.html", **_integration_context(_integration_or_404(integration_id)))


@dashboard.post("/integrations/<integration_id>/templates")
@requires("admin")
def save_templates(integration_id: str):
    row = _integration_or_404(integration_id)
    kind = INTEGRATION_TYPES.get(row["type"])
    if kind is None:
        return refuse(400, "Templates are not available for this integration type.")
    defaults = effective_templates(kind, {})
    given = {name: request.form[f"template:{name}"] for name in TEMPLATE_FIELDS if f"template:{name}" in request.form}
    nested: dict = {}
    for name, source in given.items():
        source = source.replace("\r\n", "\n")
        # The type's default, or nothing, is saved as "no custom template" (null in the API).
        value = None if not source.strip() or source == (defaults.get(name) or "") else source
        if value == (row["templates"].get(name) or None):
            continue
        if "." in name:
            channel, attribute = name.split(".")
            nested.setdefault(channel, {})[attribute] = value
        else:
            nested[name] = value
    if nested:
        try:
            data = IntegrationWriteSchema().load({"templates": nested}, partial=True)
        except ValidationError as invalid:
            body = render_template(
                "dashboard/integration.html", **_integration_context(row, _messages(invalid.messages), given)
            )
            return Response(body, status=400)
        rt = runtime()
        position = rt.config.update_integration(
            UUID(row["uuid"]), templates=flatten_templates(data["templates"], partial=True)
        )
        rt.wait_for("config", position)
    return redirect(url_for("dashboard.integration_page", integration_id=integration_id, saved=1) + "#templates", code=303)


@dashboard.post("/integrations/<integration_id>/preview")
def preview(integration_id: str):
    """One template rendered against the integration's newest alert (saves nothing; any role)."""
    row = _integration_or_404(integration_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("template_name") not in TEMPLATE_FIELDS:
        return jsonify({"error": "Give template_name (one of the template fields) and template_body."}), 400
    source = body.get("template_body")
    if not isinstance(source, str):
        return jsonify({"error": "template_body must be text."}), 400
    try:
        storable_text(source)
    except ValidationError as invalid:
        return jsonify({"error": invalid.messages[0]}), 400
    kind = INTEGRATION_TYPES.get(row["type"])
    if kind is None:
        return jsonify({"error": "Templates are not available for this integration type."}), 400
    try:
        alert = _alert_to_preview(row, None)
    except ApiError:
        return jsonify({"error": "No alert yet: send a demo alert (or a real one) to preview against it."}), 200
    link = _permalink(alert["alert_group_id"])
    field = body["template_name"]
    result = preview_field(
        kind, {**row["templates"], field: source}, field, json.loads(alert["payload"]),
        {"integration_name": row["name"], "link": link},
    )
    return jsonify({**result, "alert_id": alert["id"]})


@dashboard.post("/integrations/<integration_id>/demo")
@requires("editor")
def send_demo(integration_id: str):
    row = _integration_or_404(integration_id)
    try:
        submit_demo_alert(row, None)
    except ApiError as refused:
        return refuse(refused.status, _messages(refused.body.get("detail", refused.body)))
    if wants_fragment():
        return Response("Demo alert sent: it appears in the alert groups in a moment.", content_type="text/plain")
    return redirect(url_for("dashboard.integration_page", integration_id=integration_id), code=303)


# --- insights ---------------------------------------------------------------------------------


@dashboard.get("/insights")
def insights_page():
    try:
        days = int(request.args.get("days", "7"))
    except ValueError:
        days = 0
    if days not in INSIGHT_PERIODS:
        return refuse(400, f"days must be one of {', '.join(map(str, INSIGHT_PERIODS))}")
    integration_id = request.args.get("integration", "").strip() or None
    db = runtime().db
    names = read.integration_names(db)
    if integration_id is not None and integration_id not in names:
        return refuse(400, "No such integration.")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=days - 1), today + timedelta(days=1)
    found = read.insights(db, start, end, integration_id)
    return render_template(
        "dashboard/insights.html",
        insights=found,
        chart=stacked_bars(found.days, found.per_day),
        periods=INSIGHT_PERIODS,
        days=days,
        integration_id=integration_id or "",
        integrations=names,
        state_labels=STATE_LABELS,
        peak_alerts=max([row["alerts"] for row in found.noisiest] + [1]),
    )
