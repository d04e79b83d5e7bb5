"""Default templates of each integration type against OnCall's example payloads and real captures.

Grouping is asserted as OnCall computes it: the distinction is the md5 of the rendered grouping
key, so the expected values below are md5 of the key a user would predict.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from domain.integrations import (
    CHANNEL_ATTRIBUTES,
    INTEGRATION_TYPES,
    TEMPLATE_FIELDS,
    IntegrationType,
    effective_templates,
    evaluate,
    get_type,
)
from domain.templating import validate_syntax
from tests.unit.integration_helpers import (
    CAPTURED,
    EXAMPLES,
    appearance,
    heartbeat_payload,
    ingest,
    load,
    md5,
)

ALERTMANAGER = get_type("alertmanager")
GRAFANA_ALERTING = get_type("grafana_alerting")
WEBHOOK = get_type("webhook")
FORMATTED_WEBHOOK = get_type("formatted_webhook")


def example_or_constructed(integration_type: IntegrationType) -> Any:
    """The type's demo payload, or for the paging types (none) the constructed example file."""
    if integration_type.example_payload is not None:
        return integration_type.example_payload
    return load(EXAMPLES / f"{integration_type.slug}.json")


# --- registry and metadata --------------------------------------------------------------------


def test_registry_lists_the_types_in_oncall_ui_order() -> None:
    # OnCall's INSTALLED_ONCALL_INTEGRATIONS without maintenance, zabbix and grafana (legacy ≤8).
    assert list(INTEGRATION_TYPES) == [
        "grafana_alerting",
        "webhook",
        "alertmanager",
        "formatted_webhook",
        "kapacitor",
        "elastalert",
        "inbound_email",
        "manual",
        "direct_paging",
        "legacy_alertmanager",
        "legacy_grafana_alerting",
    ]


def test_unknown_type_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        get_type("pagerduty")


@pytest.mark.parametrize(
    ("slug", "title", "autoresolve", "heartbeat"),
    [
        ("alertmanager", "Alertmanager", True, True),
        ("grafana_alerting", "Grafana Alerting", True, False),
        ("webhook", "Webhook", True, True),
        ("formatted_webhook", "Formatted webhook", True, True),
        ("kapacitor", "Kapacitor", True, False),
        ("elastalert", "Elastalert", True, True),
        ("inbound_email", "Inbound Email", True, False),
        ("manual", "Manual", False, False),
        ("direct_paging", "Direct paging", False, False),
        ("legacy_alertmanager", "(Legacy) AlertManager", True, True),
        ("legacy_grafana_alerting", "(Deprecated) Grafana Alerting", True, False),
    ],
)
def test_metadata(slug: str, title: str, autoresolve: bool, heartbeat: bool) -> None:
    integration_type = get_type(slug)
    assert integration_type.slug == slug
    assert integration_type.title == title
    assert integration_type.is_able_to_autoresolve is autoresolve
    assert integration_type.has_heartbeat is heartbeat


WITH_EXAMPLE = [slug for slug, kind in INTEGRATION_TYPES.items() if kind.example_payload is not None]


@pytest.mark.parametrize("slug", WITH_EXAMPLE)
def test_example_payload_is_oncalls(slug: str) -> None:
    assert get_type(slug).example_payload == load(EXAMPLES / f"{slug}.json")


@pytest.mark.parametrize("slug", ["manual", "direct_paging"])
def test_paging_types_have_no_demo_alert(slug: str) -> None:
    # As in OnCall (example_payload = None ⇒ is_demo_alert_enabled False).
    assert get_type(slug).example_payload is None
    assert slug not in WITH_EXAMPLE


@pytest.mark.parametrize("slug", list(INTEGRATION_TYPES))
def test_defaults_cover_every_field_and_compile(slug: str) -> None:
    defaults = get_type(slug).defaults
    assert tuple(defaults) == TEMPLATE_FIELDS
    for name, source in defaults.items():
        assert source is None or validate_syntax(source) is None, name


@pytest.mark.parametrize("slug", list(INTEGRATION_TYPES))
def test_email_shows_the_web_title_and_message(slug: str) -> None:
    defaults = get_type(slug).defaults
    assert defaults["email.title"] == defaults["web.title"]
    assert defaults["email.message"] == defaults["web.message"]


@pytest.mark.parametrize("slug", list(INTEGRATION_TYPES))
def test_no_type_acknowledges_by_default(slug: str) -> None:
    integration_type = get_type(slug)
    assert integration_type.defaults["acknowledge_signal"] is None
    for alert in integration_type.split(example_or_constructed(integration_type)):
        assert evaluate(integration_type, {}, alert).is_acknowledge_signal is False


# --- alertmanager -------------------------------------------------------------------------------


def test_alertmanager_example_payload() -> None:
    behaviour = ingest(ALERTMANAGER, ALERTMANAGER.example_payload)
    assert behaviour.distinction == md5('{}:{alertname="InstanceDown"}')
    assert behaviour.title == "InstanceDown "  # no other group labels, the space stays (as in OnCall)
    assert behaviour.is_resolve_signal is False
    assert behaviour.source_link is None  # generatorURL is "" in the example


@pytest.mark.parametrize(
    ("capture", "group_key", "title", "resolves"),
    [
        ("am-01-firing-single.json", '{}:{alertname="DiskFull"}', "DiskFull ", False),
        ("am-02-firing-group-3-alerts.json", '{}:{alertname="InstanceDown"}', "InstanceDown ", False),
        ("am-08-firing-with-1-resolved.json", '{}:{alertname="InstanceDown"}', "InstanceDown ", False),
        ("am-09-resolved-single.json", '{}:{alertname="DiskFull"}', "DiskFull ", True),
        ("am-10-resolved-group.json", '{}:{alertname="InstanceDown"}', "InstanceDown ", True),
        (
            "am-prom-03-heartbeat.json",
            '{}/{alertname="heartbeat"}:{alertname="heartbeat"}',
            "heartbeat ",
            False,
        ),
    ],
)
def test_alertmanager_captures(capture: str, group_key: str, title: str, resolves: bool) -> None:
    payload = load(CAPTURED / "alertmanager" / capture)
    behaviour = ingest(ALERTMANAGER, payload)
    assert behaviour.distinction == md5(group_key)
    assert behaviour.title == title
    assert behaviour.is_resolve_signal is resolves
    assert behaviour.source_link == payload["alerts"][0]["generatorURL"]


def test_alertmanager_groups_notifications_by_group_key() -> None:
    def distinction(capture: str) -> str | None:
        return ingest(ALERTMANAGER, load(CAPTURED / "alertmanager" / capture)).distinction

    # Every notification of the InstanceDown group lands in one alert group, whatever its alerts.
    assert distinction("am-02-firing-group-3-alerts.json") == distinction("am-08-firing-with-1-resolved.json")
    assert distinction("am-02-firing-group-3-alerts.json") == distinction("am-10-resolved-group.json")
    # The DiskFull resolve notification finds the DiskFull group, not the InstanceDown one.
    assert distinction("am-01-firing-single.json") == distinction("am-09-resolved-single.json")
    assert distinction("am-01-firing-single.json") != distinction("am-02-firing-group-3-alerts.json")


def test_alertmanager_split_injects_counters_without_mutating_the_body() -> None:
    payload = load(CAPTURED / "alertmanager" / "am-08-firing-with-1-resolved.json")
    original = copy.deepcopy(payload)
    (alert,) = ALERTMANAGER.split(payload)
    assert (alert["numFiring"], alert["numResolved"]) == (3, 1)
    assert payload == original
    assert {key: value for key, value in alert.items() if not key.startswith("num")} == original


def test_alertmanager_split_keeps_counters_sent_by_alertmanager() -> None:
    payload = {**ALERTMANAGER.example_payload, "numFiring": 7, "numResolved": 4}
    assert ALERTMANAGER.split(payload) == [payload]


def test_alertmanager_split_counts_zero_without_alerts() -> None:
    counted = {"status": "firing", "numFiring": 0, "numResolved": 0}
    assert ALERTMANAGER.split({"status": "firing"}) == [counted]


def test_alertmanager_title_lists_the_other_group_labels() -> None:
    group_labels = {"alertname": "InstanceDown", "job": "node", "env": "prod"}
    payload = {**ALERTMANAGER.example_payload, "groupLabels": group_labels}
    assert ingest(ALERTMANAGER, payload).title == "InstanceDown (node, prod)"


def test_alertmanager_legacy_single_alert_shape_takes_the_name_from_labels() -> None:
    payload = load(EXAMPLES / "legacy_alertmanager_single_alert_test_payload.json")
    assert ingest(ALERTMANAGER, payload).title.startswith(payload["labels"]["alertname"])


def test_alertmanager_heartbeat_restore_resolves_the_missing_heartbeat_group() -> None:
    expired = ingest(ALERTMANAGER, heartbeat_payload("alertmanager_expired"))
    restored = ingest(ALERTMANAGER, heartbeat_payload("alertmanager_restored"))
    assert expired.distinction == restored.distinction == md5('{}:{alertname="OnCallHeartBeatMissing"}')
    assert (expired.is_resolve_signal, restored.is_resolve_signal) == (False, True)


def test_alertmanager_web_message() -> None:
    (alert,) = ALERTMANAGER.split(load(CAPTURED / "alertmanager" / "am-01-firing-single.json"))
    message = appearance(ALERTMANAGER, alert, "web")["message"]
    assert message.splitlines()[:4] == [
        "Status: firing :fire: (on the source)",
        "Firing alerts – 1",
        "Resolved alerts – 0",
        "[📖 Runbook](https://runbooks.example.com/DiskFull)",
    ]
    assert "GroupLabels:\n- alertname: DiskFull" in message
    assert "- mountpoint: /var" in message
    assert "Annotations:\n- description: Filesystem /var on db-1:9100 has 4.8% free space left.\n" in message
    assert "runbook_url" not in message  # shown once, as the link
    assert message.endswith(f"[View in AlertManager]({alert['alerts'][0]['generatorURL']})")


def test_alertmanager_message_severity_and_resolved_status() -> None:
    payload = load(CAPTURED / "alertmanager" / "am-10-resolved-group.json")
    payload["groupLabels"] = {"alertname": "X", "severity": "critical"}
    message = appearance(ALERTMANAGER, payload, "web")["message"]
    assert message.startswith(
        "Severity: critical :rotating_light:\nStatus: resolved :white_check_mark: (on the source)\n\n"
    )
    assert "Firing alerts" not in message


def test_alertmanager_slack_and_telegram_use_their_link_syntax() -> None:
    (alert,) = ALERTMANAGER.split(load(CAPTURED / "alertmanager" / "am-01-firing-single.json"))
    slack = appearance(ALERTMANAGER, alert, "slack", alert_group_number=42, link="https://oncall/42")
    source = alert["alerts"][0]["generatorURL"]
    assert slack["title"] == f"*<https://oncall/42|#42 DiskFull >* via Prom (*<{source}|source>*)"
    assert "<https://runbooks.example.com/DiskFull|📖 Runbook>" in slack["message"]
    assert "View in AlertManager" not in slack["message"]
    telegram = appearance(ALERTMANAGER, alert, "telegram")
    assert "<a href='https://runbooks.example.com/DiskFull'>📖 Runbook</a>" in telegram["message"]
    assert "&amp;g0.tab=1'>View in AlertManager</a>" in telegram["message"]  # payload escaped for HTML


def test_alertmanager_slack_title_omits_relative_source_links() -> None:
    slack = appearance(ALERTMANAGER, ALERTMANAGER.example_payload, "slack", alert_group_number=1, link="L")
    assert slack["title"] == "*<L|#1 InstanceDown >* via Prom"


def test_alertmanager_phone_call_title_reads_the_group_label_values() -> None:
    payload = load(CAPTURED / "grafana" / "grafana-firing.json")
    assert appearance(ALERTMANAGER, payload, "phone_call")["title"] == "High CPU usage, Infrastructure"


# --- grafana alerting -------------------------------------------------------------------------


def test_grafana_alerting_example_payload() -> None:
    behaviour = ingest(GRAFANA_ALERTING, GRAFANA_ALERTING.example_payload)
    assert behaviour.distinction == md5('{}:{alertname="InstanceDown"}')
    assert behaviour.title == "InstanceDown "
    assert behaviour.is_resolve_signal is False


def test_grafana_alerting_firing_then_resolved() -> None:
    firing = ingest(GRAFANA_ALERTING, load(CAPTURED / "grafana" / "grafana-firing.json"))
    resolved = ingest(GRAFANA_ALERTING, load(CAPTURED / "grafana" / "grafana-resolved.json"))
    group_key = (
        '{}/{severity=~"critical|warning"}:{alertname="High CPU usage", grafana_folder="Infrastructure"}'
    )
    assert firing.distinction == resolved.distinction == md5(group_key)
    assert firing.title == resolved.title == "High CPU usage (Infrastructure)"
    assert (firing.is_resolve_signal, resolved.is_resolve_signal) == (False, True)
    assert firing.source_link == "https://grafana.example.com/alerting/grafana/bdz1k0qwyv6kge/view?orgId=1"


def test_grafana_alerting_shares_alertmanager_templates_and_split() -> None:
    assert dict(GRAFANA_ALERTING.defaults) == dict(ALERTMANAGER.defaults)
    (alert,) = GRAFANA_ALERTING.split(load(CAPTURED / "grafana" / "grafana-firing.json"))
    assert (alert["numFiring"], alert["numResolved"]) == (2, 0)


# --- webhook ------------------------------------------------------------------------------------


def test_webhook_example_payload() -> None:
    payload = WEBHOOK.example_payload
    behaviour = ingest(WEBHOOK, payload)
    assert behaviour.distinction == md5(str(payload))  # the whole payload is the key
    assert behaviour.title == "Incident"
    assert behaviour.is_resolve_signal is False
    assert behaviour.source_link is None


def test_webhook_identical_payloads_group_and_different_ones_do_not() -> None:
    payload = load(CAPTURED / "webhook" / "webhook-arbitrary-json.json")
    same = load(CAPTURED / "webhook" / "webhook-arbitrary-json.json")
    other = {**payload, "host": "db-2"}
    assert ingest(WEBHOOK, payload).distinction == ingest(WEBHOOK, same).distinction
    assert ingest(WEBHOOK, payload).distinction != ingest(WEBHOOK, other).distinction


def test_webhook_resolves_on_state_ok_and_links_url() -> None:
    behaviour = ingest(WEBHOOK, {"state": "Ok", "url": "https://ci.example/job/7"})
    assert behaviour.is_resolve_signal is True
    assert behaviour.source_link == "https://ci.example/job/7"
    assert ingest(WEBHOOK, {"state": "alerting"}).is_resolve_signal is False


def test_webhook_heartbeat_groups_by_alert_uid_and_restore_resolves() -> None:
    expired = ingest(WEBHOOK, heartbeat_payload("webhook_expired"))
    restored = ingest(WEBHOOK, heartbeat_payload("webhook_restored"))
    assert expired.distinction == restored.distinction == md5("7973c835-ff3f-46e4-9444-06df127b6f8e")
    assert (expired.is_resolve_signal, restored.is_resolve_signal) == (False, True)


def test_webhook_messages_are_pretty_json() -> None:
    payload = load(CAPTURED / "webhook" / "webhook-arbitrary-json.json")
    pretty = json.dumps(payload, sort_keys=True, indent=4, separators=(",", ": "))
    assert appearance(WEBHOOK, payload, "web")["message"] == f"```\n{pretty}\n```"
    assert appearance(WEBHOOK, payload, "slack")["message"] == f"```{pretty}```"
    assert appearance(WEBHOOK, payload, "telegram")["message"] == f"<code>{pretty}</code>"


def test_webhook_telegram_escapes_payload_strings() -> None:
    rendered = appearance(WEBHOOK, {"msg": "<b>disk</b> & co"}, "telegram")
    assert '"msg": "&lt;b&gt;disk&lt;/b&gt; &amp; co"' in rendered["message"]


# --- formatted webhook --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload_path",
    [EXAMPLES / "formatted_webhook.json", CAPTURED / "webhook" / "formatted-webhook-docs-example.json"],
    ids=["oncall-example", "captured"],
)
def test_formatted_webhook_alerting_payloads(payload_path: Path) -> None:
    payload = load(payload_path)
    behaviour = ingest(FORMATTED_WEBHOOK, payload)
    assert behaviour.distinction == md5("08d6891a-835c-e661-39fa-96b6a9e26552")
    assert behaviour.title == payload["title"]
    assert behaviour.is_resolve_signal is False
    assert behaviour.source_link == "https://en.wikipedia.org/wiki/Downtime"


def test_formatted_webhook_state_ok_resolves_the_same_group() -> None:
    firing = ingest(FORMATTED_WEBHOOK, load(CAPTURED / "webhook" / "formatted-webhook-docs-example.json"))
    resolve = ingest(FORMATTED_WEBHOOK, load(CAPTURED / "webhook" / "formatted-webhook-resolve.json"))
    assert resolve.is_resolve_signal is True
    assert resolve.distinction == firing.distinction
    assert resolve.source_link is None  # no link_to_upstream_details in the resolve body
    assert ingest(FORMATTED_WEBHOOK, {"alert_uid": "a", "state": "OK"}).is_resolve_signal is True


def test_formatted_webhook_without_alert_uid_has_no_grouping_key() -> None:
    behaviour = ingest(FORMATTED_WEBHOOK, {"title": "x"})
    assert behaviour.distinction is None  # caller gives it a fresh group
    assert ingest(FORMATTED_WEBHOOK, {}).title == "Title undefined (Check Web Title Template)"


def test_formatted_webhook_appearance() -> None:
    payload = FORMATTED_WEBHOOK.example_payload
    web = appearance(FORMATTED_WEBHOOK, payload, "web")
    assert web == {key: payload[key] for key in ("title", "message", "image_url")}
    slack = appearance(FORMATTED_WEBHOOK, payload, "slack", alert_group_number=3, link="https://o/3")
    assert slack["title"] == (
        "*<https://o/3|#3 TestAlert: The whole system is down>* via Prom"
        " (*<https://en.wikipedia.org/wiki/Downtime|source>*)"
    )
    # A null image renders "None", which means no image.
    no_image = {"title": "t", "image_url": None}
    assert appearance(FORMATTED_WEBHOOK, no_image, "web")["image_url"] is None


# --- custom templates and failures ----------------------------------------------------------------


def test_custom_templates_override_and_empty_means_default() -> None:
    custom = {"grouping_key": "{{ payload.host }}", "web.title": "", "resolve_signal": None}
    templates = effective_templates(WEBHOOK, custom)
    assert templates["grouping_key"] == "{{ payload.host }}"
    assert templates["web.title"] == WEBHOOK.defaults["web.title"]
    assert templates["resolve_signal"] == WEBHOOK.defaults["resolve_signal"]
    behaviour = ingest(WEBHOOK, {"host": "db-1", "state": "ok"}, custom)
    assert behaviour.distinction == md5("db-1")
    assert behaviour.title == "Incident"
    assert behaviour.is_resolve_signal is True


def test_custom_acknowledge_condition() -> None:
    custom = {"acknowledge_signal": '{{ payload.status == "acknowledged" }}'}
    assert ingest(WEBHOOK, {"status": "acknowledged"}, custom).is_acknowledge_signal is True
    assert ingest(WEBHOOK, {"status": "open"}, custom).is_acknowledge_signal is False


def test_broken_behaviour_templates_fall_back_like_oncall() -> None:
    custom = {
        "grouping_key": "{{ payload.a.b }}",
        "resolve_signal": "{{ payload.x|nope }}",
        "web.title": "{{ payload.a.b }}",
        "source_link": "{{ range(3) }}",
    }
    behaviour = ingest(WEBHOOK, {}, custom)
    assert behaviour.distinction is None
    assert behaviour.is_resolve_signal is False
    assert behaviour.title == "Template Warning: 'dict object' has no attribute 'a'"
    assert behaviour.source_link is None
    assert ingest(WEBHOOK, {}, {"web.title": "{% if %}"}).title.startswith("Template Error: ")


def test_title_rendering_none_is_empty_and_long_titles_are_cut() -> None:
    assert ingest(WEBHOOK, {"t": None}, {"web.title": "{{ payload.t }}"}).title == ""
    assert ingest(WEBHOOK, {"t": "x" * 600}, {"web.title": "{{ payload.t }}"}).title == "x" * 500 + ".."


def test_non_web_channels_see_the_rendered_web_templates() -> None:
    custom = {
        "web.title": "{{ payload.title }}!",
        "sms.title": "{{ web_title }} / {{ web_message }} / {{ web_image_url }}",
    }
    rendered = appearance(WEBHOOK, {"title": "Disk"}, "sms", custom)
    assert rendered["title"].startswith("Disk! / ```")
    assert rendered["title"].endswith("``` / web_image_url is not set")


def test_appearance_errors_show_the_fallback_text() -> None:
    rendered = appearance(WEBHOOK, {}, "web", {"web.message": "{{ payload|shout }}"})
    assert rendered["message"] == "Template Error: No filter named 'shout'."


def test_channel_post_processing() -> None:
    custom = {"slack.title": "a\nb", "email.title": "a\nb", "phone_call.title": 'Say "<https://x.io|disk>"'}
    assert appearance(WEBHOOK, {}, "slack", custom)["title"] == "ab"
    assert appearance(WEBHOOK, {}, "email", custom)["title"] == "ab"
    assert appearance(WEBHOOK, {}, "phone_call", custom)["title"] == "Say disk"


@pytest.mark.parametrize("channel", list(CHANNEL_ATTRIBUTES))
def test_every_channel_renders_the_examples(channel: str) -> None:
    for integration_type in INTEGRATION_TYPES.values():
        alerts = integration_type.split(example_or_constructed(integration_type))
        assert alerts, integration_type.slug
        for alert in alerts:
            rendered = appearance(integration_type, alert, channel)
            assert set(rendered) == {"title", "message", "image_url"}
            assert rendered["title"], (integration_type.slug, channel)
            assert "Template" not in json.dumps(rendered), (integration_type.slug, channel)


def test_unknown_channel_is_rejected() -> None:
    with pytest.raises(ValueError, match="carrier_pigeon"):
        appearance(WEBHOOK, {}, "carrier_pigeon")


def test_render_appearance_reports_which_template_failed():
    from domain.integrations import get_type, render_appearance

    errors: dict[str, str] = {}
    shown = render_appearance(
        get_type("webhook"), {"sms.title": "{{ payload.a.b.c() }}"}, {"a": {}}, "sms",
        integration_name="Ops", errors=errors,
    )
    assert shown["title"].startswith("Template ")  # the channel still shows OnCall's fallback text
    assert errors == {"title": shown["title"]}
