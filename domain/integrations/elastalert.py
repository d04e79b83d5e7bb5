"""ElastAlert (ElastAlert 2's ``post`` / ``post2`` HTTP alerter).

What the defaults really do, as OnCall's config does: group by ``alert_uid``, resolve when
``state`` upper-cases to "OK", no acknowledge condition, no source link; every title is
"Incident" and the messages show the payload as pretty JSON.

OnCall's documentation is wrong about this integration (reference §2.2 / §14.9): its page says
the integration "handles ticket events", groups by "ticket ID", auto-acknowledges on status
"Pending" and auto-resolves on "Solved". The config OnCall ships has none of that (the text looks
copied from a ticketing integration): grouping is ``alert_uid``, resolution ``state == OK``, and
there is no acknowledge condition at all.

What ElastAlert 2's ``post`` alerter really sends (captured): the matched document's fields plus
``http_post_static_payload`` / ``http_post_payload`` entries (OnCall's docs suggest
``title: abc123``), and ``num_hits`` / ``num_matches``. It never sends ``alert_text``, and there
is no ``alert_uid`` or ``state`` unless the rule adds them. Without ``alert_uid`` the grouping
key renders empty, so the alert gets no distinction and becomes a group of its own (as in
OnCall); without ``state`` nothing resolves. To group and resolve, add e.g.
``http_post_static_payload: {alert_uid: <rule name>}`` and send ``state: ok`` on recovery.

The heartbeat rule of OnCall's docs (index ``elastalert_status``, type ``any``, ``post`` to the
integration's ``heartbeat/`` URL) posts an ``elastalert_status`` document; only the ping matters.
The heartbeat's own expired/restored alerts carry a fixed ``alert_uid`` and ``state`` so that
the restore resolves the "missing" group.
"""

from __future__ import annotations

from domain.integrations.appearance import channel_titles, pretty_json_messages, slack_title
from domain.integrations.base import IntegrationType, load_example

TITLE = "Incident"

TEMPLATES: dict[str, str | None] = {
    "grouping_key": '{{ payload.get("alert_uid", "") }}',
    "resolve_signal": '{{ payload.get("state", "").upper() == "OK" }}',
    **channel_titles(TITLE, slack_title(TITLE)),
    **pretty_json_messages(),
}

INTEGRATION_TYPE = IntegrationType(
    slug="elastalert",
    title="Elastalert",
    short_description="Elastic",
    is_able_to_autoresolve=True,
    has_heartbeat=True,
    example_payload=load_example("elastalert"),
    defaults=TEMPLATES,
)
