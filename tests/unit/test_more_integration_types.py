"""Inbound email, ElastAlert, Kapacitor, legacy Alertmanager/Grafana Alerting, direct paging and
manual types, and every type's heartbeat payloads, against OnCall's examples and real captures.

Grouping is asserted as OnCall computes it: the distinction is the md5 of the rendered grouping
key, so the expected values are md5 of the key a user would predict.
"""

from __future__ import annotations

import copy
import email
import email.policy
import functools
import json

import pytest

from domain.integrations import INTEGRATION_TYPES, IntegrationType, evaluate, get_type
from domain.integrations.base import label_sets_resolved, labels_hash
from domain.integrations.inbound_email import RULE, email_payload, html_to_text
from tests.unit import integration_helpers
from tests.unit.integration_helpers import CAPTURED, EXAMPLES, heartbeat_payload, ingest, ingest_all, load, md5

INBOUND_EMAIL = get_type("inbound_email")
ELASTALERT = get_type("elastalert")
KAPACITOR = get_type("kapacitor")
LEGACY_ALERTMANAGER = get_type("legacy_alertmanager")
LEGACY_GRAFANA_ALERTING = get_type("legacy_grafana_alerting")
DIRECT_PAGING = get_type("direct_paging")
MANUAL = get_type("manual")

# Every rendering here is alert group #7, at https://t/7, of an integration named "Ops".
appearance = functools.partial(
    integration_helpers.appearance, integration_name="Ops", alert_group_number=7, link="https://t/7"
)


def received_email(name: str) -> dict:
    """The alert payload of a captured email, parsed as the inbound views parse it."""
    message = email.message_from_bytes((CAPTURED / "email" / name).read_bytes(), policy=email.policy.default)

    def body(subtype: str) -> str | None:
        part = message.get_body(preferencelist=(subtype,))
        return None if part is None else part.get_content()

    sender = message["From"].addresses[0].addr_spec
    return email_payload(message["Subject"], body("plain"), body("html"), sender)


# --- heartbeats (every type) ---------------------------------------------------------------------


@pytest.mark.parametrize("slug", list(INTEGRATION_TYPES))
def test_heartbeat_payloads_exist_exactly_for_heartbeat_types(slug: str) -> None:
    integration_type = get_type(slug)
    assert (integration_type.heartbeat_payloads is not None) is integration_type.has_heartbeat


def test_heartbeat_types_are_oncalls() -> None:
    with_heartbeat = [slug for slug, kind in INTEGRATION_TYPES.items() if kind.has_heartbeat]
    assert with_heartbeat == [
        "webhook",
        "alertmanager",
        "formatted_webhook",
        "elastalert",
        "legacy_alertmanager",
    ]


@pytest.mark.parametrize("slug", [slug for slug, kind in INTEGRATION_TYPES.items() if kind.has_heartbeat])
def test_heartbeat_restore_resolves_the_missing_heartbeat_group(slug: str) -> None:
    integration_type = get_type(slug)
    expired, restored = integration_type.heartbeat_payloads
    assert expired == heartbeat_payload(f"{slug}_expired")
    assert restored == heartbeat_payload(f"{slug}_restored")
    missing, back = ingest(integration_type, expired), ingest(integration_type, restored)
    assert missing.distinction is not None
    assert missing.distinction == back.distinction
    assert (missing.is_resolve_signal, back.is_resolve_signal) == (False, True)
    assert integration_type.label_set(expired) == integration_type.label_set(restored)


def test_a_type_without_heartbeat_cannot_be_given_heartbeat_payloads() -> None:
    with pytest.raises(ValueError, match="without heartbeat"):
        IntegrationType(
            slug="x",
            title="X",
            short_description=None,
            is_able_to_autoresolve=True,
            has_heartbeat=False,
            example_payload=None,
            defaults={},
            heartbeat_payloads=({}, {}),
        )


# --- inbound email -------------------------------------------------------------------------------


def test_inbound_email_plain_text() -> None:
    assert received_email("01-plain-text.eml") == {
        "subject": "PROBLEM: Disk /var is 95% full on db-1",
        "message": (
            "Problem started at 20:15:00 on 2026.11.30\nProblem name: Disk /var is 95% full\nHost: db-1\n"
            "Severity: High\nOperational data: 95.2 %\nOriginal problem ID: 48213"
        ),
        "sender": "zabbix@monitoring.example.com",
    }


def test_inbound_email_html_only_is_converted_to_text() -> None:
    payload = received_email("02-html-only.eml")
    assert payload["subject"] == "[FIRING:1] InstanceDown (web-1:9100 node critical)"
    assert payload["message"] == (
        "[FIRING:1] InstanceDown\n"
        "web-1:9100 of job node has been down for more than 1 minute.\n"
        "Source (http://prometheus.example.com:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1)"
    )
    assert payload["sender"] == "alertmanager@monitoring.example.com"


def test_inbound_email_multipart_alternative_takes_the_plain_part() -> None:
    payload = received_email("03-multipart-alternative.eml")
    assert payload["message"] == (
        "**Firing**\n\nValue: A=93.17\nLabels:\n - alertname = High CPU usage\n - instance = web-01:9100"
    )


def test_inbound_email_body_ok_resolves_the_group_of_its_subject() -> None:
    raw = (CAPTURED / "email" / "06-body-ok.eml").read_bytes()
    assert raw.endswith(b"OK\r\n\r\n\r\n")  # what really arrives
    problem, ok = received_email("01-plain-text.eml"), received_email("06-body-ok.eml")
    assert ok["message"] == "OK"
    firing, resolving = ingest(INBOUND_EMAIL, problem), ingest(INBOUND_EMAIL, ok)
    assert firing.distinction == resolving.distinction == md5("PROBLEM: DISK /VAR IS 95% FULL ON DB-1")
    assert (firing.is_resolve_signal, resolving.is_resolve_signal) == (False, True)
    assert firing.title == "PROBLEM: Disk /var is 95% full on db-1"


def test_inbound_email_groups_by_upper_cased_subject() -> None:
    lower = ingest(INBOUND_EMAIL, {"subject": "disk full on db-1", "message": "x", "sender": "a@b"})
    upper = ingest(INBOUND_EMAIL, {"subject": "DISK FULL ON db-1", "message": "y", "sender": "c@d"})
    other = ingest(INBOUND_EMAIL, {"subject": "disk full on db-2", "message": "x", "sender": "a@b"})
    assert lower.distinction == upper.distinction == md5("DISK FULL ON DB-1")
    assert other.distinction != lower.distinction
    # No subject: no grouping key, so every such email is a group of its own (as in OnCall).
    assert ingest(INBOUND_EMAIL, {"subject": "", "message": "x", "sender": "a@b"}).distinction is None


@pytest.mark.parametrize(
    ("message", "resolves"), [("OK", True), ("ok", True), (" Ok \r\n", True), ("OK then", False)]
)
def test_inbound_email_resolve_condition(message: str, resolves: bool) -> None:
    assert ingest(INBOUND_EMAIL, {"subject": "s", "message": message}).is_resolve_signal is resolves


def test_inbound_email_example_and_appearance() -> None:
    behaviour = ingest(INBOUND_EMAIL, INBOUND_EMAIL.example_payload)
    assert behaviour.distinction == md5("TEST EMAIL SUBJECT")
    assert behaviour.title == "Test email subject"
    assert behaviour.source_link is None
    web = appearance(INBOUND_EMAIL, received_email("01-plain-text.eml"), "web")
    assert web["title"] == "PROBLEM: Disk /var is 95% full on db-1"
    assert web["message"].startswith("Problem started at 20:15:00")
    assert appearance(INBOUND_EMAIL, INBOUND_EMAIL.example_payload, "slack")["title"] == (
        "*<https://t/7|#7 Test email subject>* via Ops"
    )


def test_email_payload_rules() -> None:
    assert email_payload("  Disk full \n", "\n body \n", "<p>html</p>", "a@b") == {
        "subject": "Disk full",
        "message": "body",
        "sender": "a@b",
    }
    # Plain text with nothing in it gives way to the HTML body.
    assert email_payload("s", " \r\n ", "<p>from html</p>", "a@b")["message"] == "from html"
    assert email_payload(None, None, None, "a@b") == {"subject": "", "message": "", "sender": "a@b"}
    # SMTP/MIME line endings become plain newlines; an HTML-only body needs no such care.
    crlf = email_payload("s", "line 1\r\nline 2\rline 3\r\n", None, "a@b")
    assert crlf["message"] == "line 1\nline 2\nline 3"
    assert email_payload("s", "", "", "a@b")["message"] == ""


def test_html_to_text() -> None:
    html = (
        "<html><head><title>t</title><style>p { color: red }</style></head><body>"
        "<h1>Disk  full</h1><div>on <b>db-1</b>\n and <i>db-2</i></div>"
        "<p></p><p>   </p>"
        "<ul><li>one</li><li><a href='https://x.io/a'>details</a></li>"
        "<li><a href='https://x.io'>https://x.io</a></li></ul>"
        "<hr>after rule<br>next line<br/>"
        "<table><tr><td>a</td><td>b</td></tr></table>"
        "<script>alert(1)</script>&lt;tag&gt; &amp; &#34;quoted&#34;"
        "</body></html>"
    )
    assert html_to_text(html) == "\n".join(
        [
            "Disk full",
            "on db-1 and db-2",
            "* one",
            "* details (https://x.io/a)",
            "* https://x.io",
            RULE,
            "after rule",
            "next line",
            "a b",
            '<tag> & "quoted"',
        ]
    )
    assert RULE == "-" * 32
    assert html_to_text("<pre>  indented\n    code</pre>") == "  indented\n    code"
    assert html_to_text("") == ""


# --- elastalert ----------------------------------------------------------------------------------


def test_elastalert_example_payload_is_its_own_group() -> None:
    behaviour = ingest(ELASTALERT, ELASTALERT.example_payload)
    assert behaviour.distinction is None  # no alert_uid: a fresh group per alert, as in OnCall
    assert behaviour.title == "Incident"
    assert behaviour.is_resolve_signal is False
    assert behaviour.source_link is None


def test_elastalert_post_alerter_body_is_accepted_as_sent() -> None:
    # What ElastAlert 2's `post` alerter really sends: the match + static payload, no alert_text,
    # no alert_uid, no state. Nothing crashes; each such alert is a group of its own.
    payload = load(CAPTURED / "elastalert" / "elastalert-post-frequency-static-title.json")
    assert "alert_text" not in payload and "alert_uid" not in payload
    first, again = ingest(ELASTALERT, payload), ingest(ELASTALERT, copy.deepcopy(payload))
    assert first.distinction is None and again.distinction is None
    assert first.is_resolve_signal is False
    assert first.title == "Incident"
    for channel in ("web", "slack", "telegram", "sms", "phone_call", "email"):
        rendered = appearance(ELASTALERT, payload, channel)
        assert rendered["title"] and "Template" not in json.dumps(rendered)
    assert '"num_hits": 3' in appearance(ELASTALERT, payload, "web")["message"]


def test_elastalert_groups_by_alert_uid_and_resolves_on_state_ok() -> None:
    payload = load(CAPTURED / "elastalert" / "elastalert-post-frequency-static-title.json")
    firing = ingest(ELASTALERT, {**payload, "alert_uid": "checkout-errors"})
    resolved = ingest(ELASTALERT, {**payload, "alert_uid": "checkout-errors", "state": "ok"})
    assert firing.distinction == resolved.distinction == md5("checkout-errors")
    assert (firing.is_resolve_signal, resolved.is_resolve_signal) == (False, True)


def test_elastalert_does_not_do_what_oncall_docs_say() -> None:
    # The docs promise grouping by ticket id, acknowledging on "Pending", resolving on "Solved".
    ticket = {"ticket_id": "T-1", "status": "Pending"}
    assert ingest(ELASTALERT, ticket).distinction is None
    assert ingest(ELASTALERT, ticket).is_acknowledge_signal is False
    assert ingest(ELASTALERT, {**ticket, "status": "Solved"}).is_resolve_signal is False


def test_elastalert_heartbeat_rule_body_is_only_a_ping() -> None:
    # The heartbeat rule of OnCall's docs posts an elastalert_status document to .../heartbeat/.
    # Posted to the alert URL by mistake it would be an ungrouped, unresolving "Incident".
    status_doc = load(CAPTURED / "elastalert" / "elastalert-post-heartbeat.json")
    behaviour = ingest(ELASTALERT, status_doc)
    assert (behaviour.distinction, behaviour.is_resolve_signal, behaviour.title) == (None, False, "Incident")
    # The heartbeat's own alerts carry a fixed alert_uid and state, so the restore resolves.
    expired, restored = ELASTALERT.heartbeat_payloads
    assert ingest(ELASTALERT, expired).distinction == md5("0eaf37c8-e1eb-4714-b79e-7c648b6a96fa")
    assert ingest(ELASTALERT, restored).is_resolve_signal is True


# --- kapacitor -----------------------------------------------------------------------------------

KAPACITOR_ID = "kapacitor/cpu/web-01"


def test_kapacitor_example_payload() -> None:
    behaviour = ingest(KAPACITOR, KAPACITOR.example_payload)
    assert behaviour.distinction == md5("TestAlert")
    assert behaviour.title == "TestAlert"
    assert behaviour.is_resolve_signal is False
    assert behaviour.source_link is None


def test_kapacitor_warning_then_ok_recovery_resolves() -> None:
    warning = ingest(KAPACITOR, load(CAPTURED / "kapacitor" / "kapacitor-warning.json"))
    recovery = ingest(KAPACITOR, load(CAPTURED / "kapacitor" / "kapacitor-ok-recovery.json"))
    assert warning.distinction == recovery.distinction == md5(KAPACITOR_ID)
    assert warning.title == recovery.title == KAPACITOR_ID
    assert (warning.is_resolve_signal, recovery.is_resolve_signal) == (False, True)


@pytest.mark.parametrize(
    ("level", "resolves"), [("OK", True), ("CRITICAL", False), ("INFO", False), ("ok", False)]
)
def test_kapacitor_resolve_condition_is_oncalls(level: str, resolves: bool) -> None:
    # OnCall's `level.startswith("OK")` is case-sensitive; Kapacitor sends upper case.
    assert ingest(KAPACITOR, {"id": "a", "level": level}).is_resolve_signal is resolves


def test_kapacitor_web_message_shows_the_details_unescaped() -> None:
    payload = load(CAPTURED / "kapacitor" / "kapacitor-warning.json")
    original = copy.deepcopy(payload)
    assert payload["details"].startswith("{&#34;Name&#34;:&#34;cpu&#34;")
    message = appearance(KAPACITOR, payload, "web")["message"]
    assert payload == original  # the payload itself stays as sent
    assert message.startswith("```\n{") and message.endswith("}\n```")
    assert "&#34;" not in message
    shown = json.loads(message.removeprefix("```\n").removesuffix("\n```"))
    assert shown["details"]["TaskName"] == "cpu_alert"
    assert shown["details"]["Fields"] == {"usage_user": 78.4}
    assert {key: value for key, value in shown.items() if key != "details"} == {
        key: value for key, value in original.items() if key != "details"
    }
    assert shown["duration"] == 0 and shown["level"] == "WARNING"
    assert "&#34;" not in appearance(KAPACITOR, payload, "slack")["message"]
    assert "&#34;" not in appearance(KAPACITOR, payload, "email")["message"]
    # Telegram is HTML: it keeps OnCall's raw JSON (escaped once more by the channel).
    assert "&amp;#34;" in appearance(KAPACITOR, payload, "telegram")["message"]


def test_kapacitor_details_that_are_not_json_show_as_text() -> None:
    payload = {"id": "a", "level": "CRITICAL", "details": "CPU is &lt;high&gt; &amp; &#34;rising&#34;"}
    message = appearance(KAPACITOR, payload, "web")["message"]
    assert '"details": "CPU is <high> & \\"rising\\""' in message
    assert appearance(KAPACITOR, {"id": "a"}, "web")["message"] == '```\n{\n    "id": "a"\n}\n```'


# --- legacy alertmanager -------------------------------------------------------------------------


def test_legacy_alertmanager_splits_the_body_into_its_alerts() -> None:
    # OnCall's test_legacy_am_integrations: the same 3-alert body is 1 alert for `alertmanager`
    # and 3 alerts for `legacy_alertmanager`.
    body = load(CAPTURED / "alertmanager" / "am-02-firing-group-3-alerts.json")
    assert len(get_type("alertmanager").split(body)) == 1
    alerts = LEGACY_ALERTMANAGER.split(body)
    assert alerts == body["alerts"] and len(alerts) == 3
    four = load(CAPTURED / "alertmanager" / "am-08-firing-with-1-resolved.json")
    assert len(LEGACY_ALERTMANAGER.split(four)) == 4
    assert LEGACY_ALERTMANAGER.split({**body, "alerts": []}) == []
    single = load(EXAMPLES / "legacy_alertmanager_single_alert_test_payload.json")
    assert LEGACY_ALERTMANAGER.split(single) == [single]


def test_legacy_alertmanager_groups_each_alert_by_its_labels() -> None:
    body = load(CAPTURED / "alertmanager" / "am-02-firing-group-3-alerts.json")
    behaviours = ingest_all(LEGACY_ALERTMANAGER, body)
    # `{{ payload.labels }}` renders the labels as a Python dict.
    assert [b.distinction for b in behaviours] == [md5(str(alert["labels"])) for alert in body["alerts"]]
    assert len({b.distinction for b in behaviours}) == 3
    assert [b.title for b in behaviours] == ["InstanceDown"] * 3
    assert [b.source_link for b in behaviours] == [alert["generatorURL"] for alert in body["alerts"]]
    assert not any(b.is_resolve_signal for b in behaviours)


def test_legacy_alertmanager_single_alert_test_payload() -> None:
    payload = load(EXAMPLES / "legacy_alertmanager_single_alert_test_payload.json")
    behaviour = ingest(LEGACY_ALERTMANAGER, payload)
    assert behaviour.distinction == md5(
        "{'job': 'kube-state-metrics', 'instance': '10.143.139.7:8443', "
        "'job_name': 'email-tracking-perform-initialization-1.0.50', 'severity': 'warning', "
        "'alertname': 'KubeJobCompletion', 'namespace': 'default', 'prometheus': 'monitoring/k8s'}"
    )
    assert behaviour.title == "KubeJobCompletion"
    assert behaviour.source_link == payload["generatorURL"]
    web = appearance(LEGACY_ALERTMANAGER, payload, "web")
    assert web["title"] == "KubeJobCompletion"
    message = web["message"]
    assert message.startswith("\nJob default/email-tracking-perform-initialization-1.0.50 is taking more")
    assert "Severity: warning :warning:\nStatus: firing :fire: (on the source)" in message
    assert f"[:book: Runbook:link:]({payload['annotations']['runbook_url']})" in message
    assert ":label: Labels:\n- job: kube-state-metrics\n- instance: 10.143.139.7:8443\n" in message
    assert "Other annotations" not in message  # message and runbook_url were shown above
    slack = appearance(LEGACY_ALERTMANAGER, payload, "slack")
    assert slack["title"] == (
        f"*<https://t/7|#7 KubeJobCompletion>* via Ops (*<{payload['generatorURL']}|source>*)"
    )
    assert f"<{payload['annotations']['runbook_url']}|:book: Runbook:link:>" in slack["message"]
    assert f"<a href='{payload['annotations']['runbook_url']}'>" in appearance(
        LEGACY_ALERTMANAGER, payload, "telegram"
    )["message"]


def test_legacy_alertmanager_resolved_alert_finds_its_group() -> None:
    firing = LEGACY_ALERTMANAGER.split(load(CAPTURED / "alertmanager" / "am-02-firing-group-3-alerts.json"))
    resolved = LEGACY_ALERTMANAGER.split(load(CAPTURED / "alertmanager" / "am-10-resolved-group.json"))
    web_2_firing, web_2_resolved = firing[1], resolved[0]
    assert web_2_firing["labels"]["instance"] == web_2_resolved["labels"]["instance"] == "web-2:9100"
    first = evaluate(LEGACY_ALERTMANAGER, {}, web_2_firing)
    last = evaluate(LEGACY_ALERTMANAGER, {}, web_2_resolved)
    assert first.distinction == last.distinction
    assert (first.is_resolve_signal, last.is_resolve_signal) == (False, True)


def test_label_set_is_the_md5_of_the_sorted_labels_and_ignores_the_rest() -> None:
    firing = LEGACY_ALERTMANAGER.split(load(CAPTURED / "alertmanager" / "am-08-firing-with-1-resolved.json"))
    again = LEGACY_ALERTMANAGER.split(load(CAPTURED / "alertmanager" / "am-10-resolved-group.json"))
    web_2, web_2_resolved = firing[1], again[0]
    assert web_2["endsAt"] != web_2_resolved["endsAt"] and web_2["status"] != web_2_resolved["status"]
    assert LEGACY_ALERTMANAGER.label_set(web_2) == LEGACY_ALERTMANAGER.label_set(web_2_resolved)
    changed = {**web_2, "annotations": {"summary": "other"}, "endsAt": "2030-01-01T00:00:00Z"}
    assert LEGACY_ALERTMANAGER.label_set(changed) == LEGACY_ALERTMANAGER.label_set(web_2)
    reordered = {**web_2, "labels": dict(reversed(list(web_2["labels"].items())))}
    assert LEGACY_ALERTMANAGER.label_set(reordered) == LEGACY_ALERTMANAGER.label_set(web_2)
    assert LEGACY_ALERTMANAGER.label_set(web_2) == md5(json.dumps(web_2["labels"], sort_keys=True))
    assert LEGACY_ALERTMANAGER.label_set(firing[2]) != LEGACY_ALERTMANAGER.label_set(web_2)
    assert labels_hash({}) == labels_hash({"labels": None}) == md5("{}")
    assert labels_hash(["not", "a", "dict"]) == md5("{}")


@pytest.mark.parametrize("slug", [s for s in INTEGRATION_TYPES if not s.startswith("legacy_")])
def test_other_types_have_no_label_set(slug: str) -> None:
    integration_type = get_type(slug)
    assert integration_type.label_set({"labels": {"a": "b"}}) is None
    assert integration_type.label_set(None) is None


def test_label_sets_resolved() -> None:
    a, b = "a" * 32, "b" * 32
    assert label_sets_resolved([]) is False
    assert label_sets_resolved([(a, False), (a, True)]) is True
    assert label_sets_resolved([(a, False), (b, False), (a, True)]) is False  # b still firing
    assert label_sets_resolved([(a, False), (b, False), (a, True), (b, True)]) is True
    assert label_sets_resolved([(a, True), (b, True), (a, False)]) is False  # a fired again
    assert label_sets_resolved([(a, False), (a, True), (None, False)]) is True  # no label set: ignored


# --- legacy grafana alerting ---------------------------------------------------------------------


def test_legacy_grafana_alerting_example_payload() -> None:
    (behaviour,) = ingest_all(LEGACY_GRAFANA_ALERTING, LEGACY_GRAFANA_ALERTING.example_payload)
    assert behaviour.distinction == md5("TestAlert")
    assert behaviour.title == "TestAlert"
    assert behaviour.is_resolve_signal is False
    assert behaviour.source_link is None  # generatorURL is ""


def test_legacy_grafana_alerting_groups_by_alert_name() -> None:
    # OnCall's test payload for this shape: md5("KubeJobCompletion") (reference §2.9).
    single = load(EXAMPLES / "grafana_single_alert_test_payload.json")
    assert evaluate(LEGACY_GRAFANA_ALERTING, {}, single).distinction == "c6bf5494a2d3052459b4dac837e41455"
    firing = ingest_all(LEGACY_GRAFANA_ALERTING, load(CAPTURED / "grafana" / "grafana-firing.json"))
    resolved = ingest_all(LEGACY_GRAFANA_ALERTING, load(CAPTURED / "grafana" / "grafana-resolved.json"))
    assert len(firing) == len(resolved) == 2
    assert {b.distinction for b in firing + resolved} == {md5("High CPU usage")}
    assert [b.is_resolve_signal for b in firing + resolved] == [False, False, True, True]
    assert {b.title for b in firing} == {"High CPU usage"}


def test_legacy_grafana_alerting_group_resolves_when_every_instance_has() -> None:
    firing = LEGACY_GRAFANA_ALERTING.split(load(CAPTURED / "grafana" / "grafana-firing.json"))
    resolved = LEGACY_GRAFANA_ALERTING.split(load(CAPTURED / "grafana" / "grafana-resolved.json"))
    label_set = LEGACY_GRAFANA_ALERTING.label_set

    def history(*alerts: dict) -> list[tuple[str | None, bool]]:
        return [
            (label_set(alert), evaluate(LEGACY_GRAFANA_ALERTING, {}, alert).is_resolve_signal)
            for alert in alerts
        ]

    assert label_set(firing[0]) == label_set(resolved[0]) != label_set(firing[1])
    assert label_sets_resolved(history(firing[0], firing[1], resolved[0])) is False  # web-02 still firing
    assert label_sets_resolved(history(firing[0], firing[1], resolved[0], resolved[1])) is True


def test_legacy_grafana_alerting_appearance() -> None:
    alert = LEGACY_GRAFANA_ALERTING.split(load(CAPTURED / "grafana" / "grafana-firing.json"))[0]
    web = appearance(LEGACY_GRAFANA_ALERTING, alert, "web")
    assert web["title"] == "High CPU usage"
    assert "**Status**: firing" in web["message"]
    assert "*instance*: web-01:9100" in web["message"]
    assert f"*runbook_url*:  [here]({alert['annotations']['runbook_url']})" in web["message"]
    assert appearance(LEGACY_GRAFANA_ALERTING, alert, "sms")["title"] == "High CPU usage"
    assert appearance(LEGACY_GRAFANA_ALERTING, {"labels": {}}, "sms")["title"] == "Title undefined"
    assert evaluate(LEGACY_GRAFANA_ALERTING, {}, {}).title == "No title (check Web Title Template)"


# --- direct paging and manual ------------------------------------------------------------------


@pytest.mark.parametrize("integration_type", [DIRECT_PAGING, MANUAL], ids=["direct_paging", "manual"])
def test_paging_payload(integration_type: IntegrationType) -> None:
    payload = load(EXAMPLES / f"{integration_type.slug}.json")
    behaviour = ingest(integration_type, payload)
    # `{{ payload }}` renders the whole payload as a Python dict; its fresh uid makes it unique.
    assert behaviour.distinction == md5(str(payload))
    assert behaviour.title == "alice is paging Network team to join escalation"
    assert behaviour.is_resolve_signal is False
    assert behaviour.source_link is None  # permalink is null
    assert integration_type.is_able_to_autoresolve is False
    other = copy.deepcopy(payload)
    other["oncall"]["uid"] = "0b5bd7e6-5a8e-4b8f-9d55-3f1c1b9d0c11"
    assert ingest(integration_type, other).distinction != behaviour.distinction


@pytest.mark.parametrize("integration_type", [DIRECT_PAGING, MANUAL], ids=["direct_paging", "manual"])
def test_paging_appearance(integration_type: IntegrationType) -> None:
    payload = load(EXAMPLES / f"{integration_type.slug}.json")
    message = payload["oncall"]["message"]
    web = appearance(integration_type, payload, "web")
    assert web == {
        "title": payload["oncall"]["title"],
        "message": f"{message}\n\ncreated by alice",
        "image_url": None,
    }
    linked = copy.deepcopy(payload)
    linked["oncall"]["permalink"] = "https://chat.example.com/m/1"
    assert ingest(integration_type, linked).source_link == "https://chat.example.com/m/1"
    assert appearance(integration_type, linked, "web")["message"] == (
        f"{message}\n\n[Link to the original message](https://chat.example.com/m/1)\n\ncreated by alice"
    )
    slack = appearance(integration_type, linked, "slack")
    assert slack["title"] == (
        "*<https://t/7|#7 alice is paging Network team to join escalation>* via Ops "
        "(*<https://chat.example.com/m/1|source>*)"
    )
    assert slack["message"] == f"{message}\n\ncreated by alice"
    assert appearance(integration_type, payload, "phone_call")["title"] == payload["oncall"]["title"]
