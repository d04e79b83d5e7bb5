"""Personal notification rules in the domain: steps OnCall accepts, two ordered lists per user,
OnCall's email fallback, channel addresses on the user, and the message a channel shows; driven
through the commands on an in-memory event store."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError, Application

from domain.integrations import get_type
from domain.notification_rules import (
    ADDRESS_SLOTS,
    CHANNELS,
    FALLBACK_STEPS,
    MAX_RULES,
    RULE_TYPES,
    NotificationRuleCommands,
    NotificationRules,
    NotificationStep,
    RuleRefused,
    make_step,
    notification_message,
    rules_for,
    shown_channels,
)
from domain.users import User

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Rules(NotificationRuleCommands, Application):
    """The commands as ``Configuration`` runs them, on the in-memory store."""


@pytest.fixture
def app():
    return Rules()


def new_user(app: Rules) -> User:
    user = User(username=f"u{uuid4().hex[:6]}", email="u@example.com", role="editor", timezone="UTC",
                team_ids=[], created_at=NOW)  # fmt: skip
    app.save(user)
    return user


def types(app: Rules, user: User, important: bool = False) -> list[str]:
    return [step.type for step in rules_for(app.notification_rules(user.id), important)]


# --- steps ------------------------------------------------------------------------------------


def test_the_rule_types_are_oncalls_public_names():
    assert RULE_TYPES == (
        "wait", "notify_by_email", "notify_by_webhook", "notify_by_slack", "notify_by_mattermost",
        "notify_by_telegram", "notify_by_sms", "notify_by_phone_call", "notify_by_mobile_app",
        "notify_by_mobile_app_critical",
    )  # fmt: skip
    assert ADDRESS_SLOTS == tuple(name for name in CHANNELS if name != "email")


def test_steps_take_oncalls_durations_and_a_wait_defaults_to_five_minutes():
    assert make_step("wait") == NotificationStep("wait", 300)
    assert [make_step("wait", d).duration for d in (60, 300, 900, 1800, 3600)] == [60, 300, 900, 1800, 3600]
    assert make_step("notify_by_sms") == NotificationStep("notify_by_sms")
    assert make_step("notify_by_sms").channel == CHANNELS["sms"]
    assert make_step("wait").channel is None
    for step_type, duration, field, text in (
        ("notify_by_fax", None, "type", "Invalid type"),
        ("Wait", None, "type", "Invalid type"),
        ("wait", 61, "duration", '"61" is not a valid choice.'),
        ("wait", 0, "duration", '"0" is not a valid choice.'),
        ("notify_by_email", 300, "duration", "Duration can't be set"),
    ):
        with pytest.raises(RuleRefused) as refused:
            make_step(step_type, duration)
        assert (refused.value.field, refused.value.text) == (field, text)


# --- lists and the fallback -------------------------------------------------------------------


def test_a_user_without_rules_is_emailed_as_oncall_does(app):
    user = new_user(app)
    assert app.notification_rules(user.id) is None
    assert rules_for(None, important=False) == rules_for(None, important=True) == list(FALLBACK_STEPS)
    assert types(app, user) == types(app, user, important=True) == ["notify_by_email"]


def test_default_and_important_lists_are_separate_and_each_falls_back_on_its_own(app):
    user = new_user(app)
    app.add_notification_rule(user.id, False, make_step("notify_by_slack"))
    app.add_notification_rule(user.id, False, make_step("wait", 900))
    app.add_notification_rule(user.id, False, make_step("notify_by_sms"))
    assert types(app, user) == ["notify_by_slack", "wait", "notify_by_sms"]
    assert rules_for(app.notification_rules(user.id), False)[1] == NotificationStep("wait", 900)
    assert types(app, user, important=True) == ["notify_by_email"]  # that list is still empty

    app.add_notification_rule(user.id, True, make_step("notify_by_phone_call"))
    assert types(app, user, important=True) == ["notify_by_phone_call"]
    assert types(app, user) == ["notify_by_slack", "wait", "notify_by_sms"]


def test_a_list_of_waits_only_notifies_no_one_as_in_oncall(app):
    user = new_user(app)
    app.add_notification_rule(user.id, False, make_step("wait"))
    assert types(app, user) == ["wait"]


def test_positions_insert_move_and_swap(app):
    user = new_user(app)
    ids = {}
    for name in ("notify_by_email", "notify_by_slack", "notify_by_sms"):
        ids[name], _ = app.add_notification_rule(user.id, False, make_step(name))
    ids["first"], _ = app.add_notification_rule(user.id, False, make_step("notify_by_telegram"), position=0)
    ids["last"], _ = app.add_notification_rule(user.id, False, make_step("wait", 60), position=-1)
    ids["far"], _ = app.add_notification_rule(user.id, False, make_step("notify_by_webhook"), position=99)
    assert types(app, user) == ["notify_by_telegram", "notify_by_email", "notify_by_slack", "notify_by_sms",
                                "wait", "notify_by_webhook"]  # fmt: skip

    app.change_notification_rule(user.id, ids["notify_by_sms"], position=0)  # a move shifts the others
    assert types(app, user)[:4] == ["notify_by_sms", "notify_by_telegram", "notify_by_email", "notify_by_slack"]
    app.change_notification_rule(user.id, ids["notify_by_sms"], position=-1)
    assert types(app, user)[-1] == "notify_by_sms"
    app.change_notification_rule(user.id, ids["notify_by_sms"], position=0, swap=True)  # trades places
    assert types(app, user) == ["notify_by_sms", "notify_by_email", "notify_by_slack", "wait", "notify_by_webhook",
                                "notify_by_telegram"]  # fmt: skip

    app.change_notification_rule(user.id, ids["notify_by_email"], step=make_step("wait", 3600))
    assert rules_for(app.notification_rules(user.id), False)[1] == NotificationStep("wait", 3600)
    app.remove_notification_rule(user.id, ids["notify_by_email"])
    assert types(app, user) == ["notify_by_sms", "notify_by_slack", "wait", "notify_by_webhook", "notify_by_telegram"]


def test_a_change_that_changes_nothing_records_nothing(app):
    user = new_user(app)
    rule_id, position = app.add_notification_rule(user.id, False, make_step("notify_by_sms"))
    assert position is not None
    assert app.change_notification_rule(user.id, rule_id, step=make_step("notify_by_sms"), position=0) is None


def test_each_list_is_bounded(app):
    user = new_user(app)
    for _ in range(MAX_RULES):
        app.add_notification_rule(user.id, True, make_step("wait"))
    with pytest.raises(RuleRefused, match=f"at most {MAX_RULES}"):
        app.add_notification_rule(user.id, True, make_step("wait"))
    app.add_notification_rule(user.id, False, make_step("wait"))  # the other list is not full


def test_rules_of_a_deleted_or_unknown_user_or_an_unknown_rule_cannot_change(app):
    user = new_user(app)
    rule_id, _ = app.add_notification_rule(user.id, False, make_step("notify_by_sms"))
    with pytest.raises(AggregateNotFoundError):
        app.change_notification_rule(user.id, uuid4(), position=0)
    with pytest.raises(AggregateNotFoundError):
        app.remove_notification_rule(user.id, uuid4())
    user = app.repository.get(user.id)
    user.delete(at=NOW)
    app.save(user)
    for command in (
        lambda: app.add_notification_rule(user.id, False, make_step("wait")),
        lambda: app.remove_notification_rule(user.id, rule_id),
        lambda: app.change_notification_channels(user.id, {"sms": None}),
        lambda: app.add_notification_rule(uuid4(), False, make_step("wait")),
    ):
        with pytest.raises(AggregateNotFoundError):
            command()


def test_the_rules_aggregate_is_one_per_user():
    user_id = uuid4()
    assert NotificationRules.create_id(user_id) == NotificationRules.create_id(user_id)
    assert NotificationRules.create_id(user_id) != NotificationRules.create_id(uuid4())


# --- channel addresses ------------------------------------------------------------------------


def test_channel_addresses_are_set_and_cleared_by_slot(app):
    user = new_user(app)
    sms = {"url": "twilio://AC1:tok@15551234567/15557654321", "shown": "twilio://...1:t...k@15551234567/15557654321"}
    hook = {"url": "https://hooks.example.com/abc", "shown": "https://hooks.example.com/****************"}
    assert app.change_notification_channels(user.id, {"sms": sms, "webhook": hook}) is not None
    assert app.repository.get(user.id).notification_channels == {"sms": sms, "webhook": hook}
    assert app.change_notification_channels(user.id, {"sms": sms}) is None  # the same again: nothing recorded
    app.change_notification_channels(user.id, {"sms": None})
    assert app.repository.get(user.id).notification_channels == {"webhook": hook}
    for slot in ("email", "fax"):
        with pytest.raises(RuleRefused) as refused:
            app.change_notification_channels(user.id, {slot: hook})
        assert (refused.value.field, refused.value.text) == (slot, "Unknown channel")


def test_others_see_only_which_service_a_channel_uses():
    shown = {"sms": "twilio://...1:t...k@15551234567/", "webhook": "https://hooks.example.com/****************"}
    assert shown_channels(shown, full=True) == shown
    assert shown_channels(shown, full=False) == {
        "sms": "twilio://****************", "webhook": "https://****************",
    }  # fmt: skip
    assert shown_channels(None, full=False) == {}


# --- messages ---------------------------------------------------------------------------------

ALERTMANAGER = get_type("alertmanager").example_payload


def message(channel: str, templates: dict | None = None, payload=ALERTMANAGER) -> dict:
    return notification_message("alertmanager", templates or {}, payload, channel, "Prometheus", 7,
                                "https://oncall.example.com/groups/I1")  # fmt: skip


def test_each_channel_shows_its_own_templates_with_oncalls_defaults():
    email = message("email")
    assert (email["title"], email["format"]) == ("InstanceDown", "text")
    assert email["body"].startswith("Status: firing") and "Firing alerts – 2" in email["body"]
    slack = message("slack")
    assert slack["title"] == "*<https://oncall.example.com/groups/I1|#7 InstanceDown >* via Prometheus"
    assert slack["format"] == "markdown"
    assert message("mattermost") == slack  # Mattermost shows Slack's templates
    assert message("telegram")["format"] == "html"
    for short in ("sms", "phone_call"):  # a title only: the body is the title
        assert message(short) == {"title": "InstanceDown", "body": "InstanceDown", "format": "text"}
    assert message("webhook")["body"] == message("mobile_app")["body"] == email["body"]


def test_customised_templates_are_used_and_others_keep_the_default():
    templates = {"sms.title": "{{ payload.commonLabels.severity | upper }}: {{ payload.groupLabels.alertname }}",
                 "email.message": "Runbook: {{ payload.commonAnnotations.runbook_url | default('none') }}"}  # fmt: skip
    assert message("sms", templates)["title"] == "CRITICAL: InstanceDown"
    email = message("email", templates)
    assert (email["title"], email["body"]) == ("InstanceDown", "Runbook: none")


def test_telegram_escapes_the_alert_data_not_the_template():
    payload = {**ALERTMANAGER, "groupLabels": {"alertname": "<b>x</b> & y"}}
    sent = message("telegram", {"telegram.title": "<b>{{ payload.groupLabels.alertname }}</b>"}, payload)
    assert sent["title"] == "<b>&lt;b&gt;x&lt;/b&gt; &amp; y</b>"


def test_a_broken_template_shows_its_error_and_a_title_without_line_breaks_for_email():
    broken = message("email", {"email.title": "{{ payload.x | nosuchfilter }}", "email.message": "a\nb"})
    assert broken["title"].startswith("Template Error: ") and broken["body"] == "a\nb"
    multi = message("email", {"email.title": "first\nsecond"})
    assert multi["title"] == "firstsecond"  # OnCall drops line breaks from email titles


def test_an_empty_title_takes_the_first_line_of_the_body_or_names_the_integration():
    assert message("email", {"email.title": "{{ '' }}", "email.message": "line one\nline two"})["title"] == "line one"
    empty = message("email", {"email.title": "{{ '' }}", "email.message": "{{ '' }}"})
    assert empty == {"title": "Alert group from Prometheus", "body": "Alert group from Prometheus", "format": "text"}
