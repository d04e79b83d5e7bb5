"""``/a/<token>``: the action links of notifications (``adapters.action_links``).

``GET`` shows what the link will do, to which alert group, as whom, and a button; it changes
nothing, so mail scanners and link prefetchers that open every link do no harm. ``POST`` does it
as the link's user, if that user still exists and may act (editor or admin) at that moment, and
shows the outcome, or the group's refusal in OnCall's words. Expired, changed or cut-short links,
and links of deleted users or viewers, get a page that says so (4xx).

No sign-in and no cookie: the token in the URL is the whole credential.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from flask import Blueprint, Response, render_template_string

from adapters.action_links import (
    ACTION_TITLES,
    ActionToken,
    ExpiredToken,
    InvalidToken,
    actor_refusal,
    command_for,
    read_action_token,
)
from domain.alert_group import ActionRefused
from projections.queries import alert_group
from projections.users import user_by_uuid
from web import runtime
from web.dashboard.charts import STATE_LABELS

action_links = Blueprint("action_links", __name__)

# What each action will do, said on the confirmation page.
CONSEQUENCES = {
    "acknowledge": "Its escalation stops; the group stays open until it is resolved.",
    "resolve": "The group is closed; its escalation stops, and a new alert of the same kind opens a new group.",
    "silence": "Its escalation pauses for 30 minutes; then the group fires again unless it was acknowledged "
    "or resolved meanwhile.",
    "unacknowledge": "The group fires again and its escalation starts over.",
}
DONE = {
    "acknowledge": "Acknowledged",
    "resolve": "Resolved",
    "silence": "Silenced for 30 minutes",
    "unacknowledge": "Unacknowledged",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="robots" content="noindex">
  <title>{{ heading }} · Tocsin</title>
  <link rel="stylesheet" href="{{ url_for('dashboard.static', filename='dashboard.css') }}">
</head>
<body>
  <header class="top"><span class="brand">Tocsin</span></header>
  <main id="main">
    <section class="card narrow">
      <h1>{{ heading }}</h1>
      {% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
      {% if done %}<p class="notice" role="status">{{ done }}</p>{% endif %}
      {% if group %}
      <dl class="facts">
        <div class="wide"><dt>Alert group</dt>
          <dd><a href="{{ url_for('dashboard.alert_group_page', group_id=group.id) }}">{{ group.title or group.id }}</a>
            <span class="muted">{{ group.id }}</span></dd></div>
        <div><dt>State</dt>
          <dd><span class="badge state-{{ group.state }}" id="group-state">{{ state_labels.get(group.state, group.state) }}</span></dd></div>
        <div><dt>As</dt><dd id="acting-user">{{ username }}</dd></div>
      </dl>
      {% endif %}
      {% if confirm %}
      <p>{{ consequence }}</p>
      {# No CSRF token: the form posts the link's own token back, and whoever has that token may
         act anyway; there is no cookie or session whose authority another site could borrow. #}
      <form method="post">
        <button type="submit" class="primary">{{ confirm }}</button>
      </form>
      <p class="muted">This link works until {{ expires_at }}.</p>
      {% endif %}
    </section>
  </main>
</body>
</html>
"""


def _now() -> datetime:
    return datetime.now(UTC)


def _page(status: int, heading: str, **context) -> Response:
    html = render_template_string(PAGE, heading=heading, state_labels=STATE_LABELS, **context)
    response = Response(html, status=status)
    # The URL is a credential: never cached, never sent on as a referrer, never framed (a framed
    # page could lure a click on its button), never indexed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


class Refused(Exception):
    def __init__(self, status: int, heading: str, message: str, group: dict | None = None, username: str = ""):
        self.response = _page(status, heading, error=message, group=group, username=username)


def _grant(token: str) -> tuple[ActionToken, dict, dict]:
    """The link's grant, its user's row and its group's row; ``Refused`` when it may not act."""
    try:
        grant = read_action_token(runtime().settings, token, _now())
    except ExpiredToken as expired:
        raise Refused(
            410,
            "This link has expired",
            f"It worked until {_when(expired.expires_at)}. Open the alert group in Tocsin, or use the links of a "
            "newer notification.",
        )
    except InvalidToken:
        raise Refused(
            400,
            "This link is not valid",
            "It was changed or cut short on its way. Open it exactly as the notification gave it.",
        )
    db = runtime().db
    user = user_by_uuid(db, str(grant.user_id))
    refusal = actor_refusal(user, grant.username)
    if refusal is not None:
        raise Refused(403, "Not allowed", refusal)
    group = alert_group(db, grant.group_id)
    if group is None:
        raise Refused(404, "Not found", "No such alert group.")
    return grant, user, group


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@action_links.get("/a/<token>")
def confirm(token: str):
    try:
        grant, user, group = _grant(token)
    except Refused as refused:
        return refused.response
    return _page(
        200,
        f"{ACTION_TITLES[grant.action]}?",
        group=group,
        username=user["username"],
        confirm=ACTION_TITLES[grant.action],
        consequence=CONSEQUENCES[grant.action],
        expires_at=_when(grant.expires_at),
    )


@action_links.post("/a/<token>")
def act(token: str):
    try:
        grant, user, group = _grant(token)
    except Refused as refused:
        return refused.response
    rt = runtime()
    username = user["username"]  # as now: a renamed user acts under the new name, as API tokens do
    command = command_for(grant.action, UUID(group["uuid"]), by=username, at=_now())
    try:
        position = rt.alerting.handle(command)
    except ActionRefused as refused:
        return _page(400, "Not done", error=str(refused), group=group, username=username)
    rt.wait_for("alerting", position)  # the page shows the new state
    group = alert_group(rt.db, grant.group_id) or group
    return _page(200, "Done", done=f"{DONE[grant.action]} by {username}.", group=group, username=username)
