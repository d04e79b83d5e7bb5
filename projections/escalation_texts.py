"""How the timeline words escalation steps: OnCall's log texts (``AlertGroupLogRecord``), with the
people a step notified added after a colon."""

from __future__ import annotations

from uuid import UUID

from domain import paging
from domain.ids import public_id
from domain.schedules.aggregates import PREFIX_SCHEDULE

# OnCall's display names of the steps (EscalationPolicy.STEP_CHOICES).
STEP_NAMES = {
    "wait": "Wait",
    "notify_persons": "Notify multiple Users",
    "notify_person_next_each_time": "Notify User (next each time)",
    "notify_team_members": "Notify all team members",
    "notify_on_call_from_schedule": "Notify Schedule",
    "trigger_webhook": "Trigger Webhook",
    "resolve": "Resolve",
    "repeat_escalation": "Repeat Escalation (5 times max)",
    "notify_if_time_from_to": "Continue escalation if time",
    "notify_if_num_alerts_in_window": "Continue escalation if >X alerts per Y minutes",
}

_FAILURES = {
    paging.NOTIFY_QUEUE_NO_RECIPIENTS: 'skipped escalation step "Notify User (next each time)" because no users are set',
    paging.NOTIFY_MULTIPLE_NO_RECIPIENTS: 'skipped escalation step "Notify multiple Users" because no users are set',
    paging.SCHEDULE_DOES_NOT_EXIST: 'skipped escalation step "Notify Schedule" because schedule doesn\'t exist',
    paging.SCHEDULE_NOT_SELECTED: 'skipped escalation step "Notify Schedule" because it is not configured',
    paging.WAIT_STEP_IS_NOT_CONFIGURED: 'escalation step "Wait" is not configured. Default delay is 5 minutes.',
    paging.NOTIFY_IF_TIME_IS_NOT_CONFIGURED:
        'skipped escalation step "Continue escalation if time" because it is not configured',
    paging.UNSPECIFIED_STEP: "escalation step is unspecified. Skipped",
    paging.TRIGGER_WEBHOOK_STEP_IS_NOT_CONFIGURED:
        'skipped escalation step "Trigger Outgoing Webhook" because it is not configured',
    paging.NOTIFY_IF_NUM_ALERTS_IN_WINDOW_STEP_IS_NOT_CONFIGURED:
        'skipped escalation step "Continue escalation if >X alerts per Y minutes" because it is not configured',
    paging.NOTIFY_TEAM_MEMBERS_STEP_IS_NOT_CONFIGURED:
        'skipped escalation step "Notify all team members" because it is not configured',
}  # fmt: skip


def schedule_public_id(schedule_id: UUID) -> str:
    return public_id(PREFIX_SCHEDULE, schedule_id)


def _important(step: dict) -> str:
    return " (Important)" if step.get("important") else ""


def _names(details: dict) -> str:
    users = details.get("users")
    return ": " + ", ".join(u["username"] for u in users) if users else ""


def started(chain_name: str, reason: str) -> str:
    if reason == paging.REASON_NEW_GROUP:
        return f'escalation started with chain "{chain_name}"'
    return f'escalation restarted with chain "{chain_name}" because alert group was {reason}'


def triggered(step: dict, details: dict) -> str:
    kind = step["type"]
    if kind == "repeat_escalation":
        return "escalation started from the beginning"
    if kind == "notify_if_time_from_to":
        eta = details.get("eta")
        if eta is not None:
            return f"escalation stopped until {eta.strftime('%B %d %Y %H:%M:%S')} (UTC)"
        return 'triggered step "Continue escalation if time"'
    if kind == "notify_if_num_alerts_in_window":
        text = (f'triggered step "Continue escalation if >{step["num_alerts_in_window"]} alerts per '
                f'{step["num_minutes_in_window"]} minutes"')  # fmt: skip
        return text + (f": {details['alerts']} so far, waiting for more" if details.get("paused") else "")
    if kind == "notify_on_call_from_schedule":
        return f"triggered step \"Notify on-call from Schedule '{details['schedule_name']}'{_important(step)}\"" + _names(details)
    if kind == "notify_team_members":
        return f'triggered step "Notify all team members{_important(step)}" (team {details["team"]})' + _names(details)
    if kind == "wait":
        return f'triggered step "Wait" ({duration_text(details["duration"])})'
    if kind == "trigger_webhook":
        return f'triggered step "Trigger Webhook" ({details["webhook_id"]})'
    return f'triggered step "{STEP_NAMES.get(kind, kind)}{_important(step)}"' + _names(details)


def failed(step: dict, code: int, details: dict) -> str:
    if code == paging.ICAL_NO_VALID_USERS:
        return (f'escalation step "Notify Schedule" "{details.get("schedule_name", "")}" skipped: there are no users'
                " to notify for this schedule slot.")  # fmt: skip
    if code == paging.TEAM_HAS_NO_MEMBERS:
        return f'skipped escalation step "Notify all team members" because team {details.get("team")} has no one to notify'
    return _FAILURES.get(code, f"escalation step failed ({code})")


def duration_text(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


CHANNEL_NAMES = {"email": "email", "webhook": "webhook", "sms": "SMS", "phone_call": "phone call",
                 "mobile_app": "mobile app", "mobile_app_critical": "mobile app (critical)"}  # fmt: skip


def channel_name(channel: str) -> str:
    return CHANNEL_NAMES.get(channel, channel.replace("_", " ").title())
