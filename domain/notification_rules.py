"""Personal notification rules (OnCall's ``UserNotificationPolicy``), the channels they notify
through, and the message a notification carries.

Rules: every user has two ordered lists, default and important (escalation steps say which one
to follow). A step is ``wait`` (a ``duration``: 1, 5, 15, 30 or 60 minutes) or
``notify_by_<channel>``. A user's lists live in one ``NotificationRules`` aggregate, so positions
stay dense and unique within each list. A list without rules falls back to one email, as OnCall's
``get_notification_policies_or_use_default_fallback`` does (OnCall creates no rules for new users).

Channels, by the rule type that names them (OnCall's public names): the address each is sent
to, and the integration templates it shows.

* ``notify_by_email``: the user's ``email``, through ``TOCSIN_SMTP_URL``; ``email.*``.
* ``notify_by_webhook``: an http(s) URL that takes a JSON POST; ``web.*``.
* ``notify_by_slack``, ``notify_by_mattermost``: an Apprise URL; ``slack.*`` (Mattermost has no
  templates of its own here).
* ``notify_by_telegram``: an Apprise URL; ``telegram.*`` (HTML).
* ``notify_by_sms``, ``notify_by_phone_call``: an Apprise URL; ``sms.title``, ``phone_call.title``.
* ``notify_by_mobile_app``, ``notify_by_mobile_app_critical``: an Apprise URL; ``web.*``.

An Apprise URL may name any service Apprise sends to over HTTP, whatever the slot is called: the
slot decides which rules use it and which templates it shows (``sms`` could hold a
``twilio://`` or a ``vonage://`` URL, ``mobile_app`` an ``ntfy://`` or a ``pover://`` one,
``slack`` a ``slack://``, a Microsoft Teams ``workflows://`` or a ``discord://`` one).
Addresses are checked and masked by ``adapters.notify_channels`` before a command records them;
each slot keeps the URL and the masked form its owner and admins see. Other users see only the
scheme (the service).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import retry

from domain.escalation import insert_position
from domain.integrations import get_type, render_appearance
from domain.users import User

CONFLICT_RETRY = {"max_attempts": 20, "wait": 0.005, "stall": 0.0}

PREFIX_NOTIFICATION_RULE = "N"  # OnCall's prefix
WAIT = "wait"
NOTIFY_BY = "notify_by_"
WAIT_DURATIONS = (60, 300, 900, 1800, 3600)  # seconds: OnCall's choices
DEFAULT_WAIT = 300  # OnCall's default for a new wait step
MAX_RULES = 50  # per list: plenty for people, and a bound on what one user can make us keep
MASK = "****************"  # OnCall's mask for secrets


@dataclass(frozen=True)
class Channel:
    name: str  # OnCall's slug: the rule type is notify_by_<name>
    address: str  # "email" (the user's email), "webhook" (an http(s) URL) or "apprise" (an Apprise URL)
    templates: str  # the integration's template channel it shows
    body_format: str  # what those templates write: "text", "markdown" or "html"


CHANNELS: dict[str, Channel] = {
    channel.name: channel
    for channel in (
        Channel("email", "email", "email", "text"),
        Channel("webhook", "webhook", "web", "markdown"),
        Channel("slack", "apprise", "slack", "markdown"),
        Channel("mattermost", "apprise", "slack", "markdown"),
        Channel("telegram", "apprise", "telegram", "html"),
        Channel("sms", "apprise", "sms", "text"),
        Channel("phone_call", "apprise", "phone_call", "text"),
        Channel("mobile_app", "apprise", "web", "markdown"),
        Channel("mobile_app_critical", "apprise", "web", "markdown"),
    )
}
# Channels whose address a user sets (email uses the user's email).
ADDRESS_SLOTS = tuple(name for name, channel in CHANNELS.items() if channel.address != "email")
RULE_TYPES = (WAIT, *(NOTIFY_BY + name for name in CHANNELS))


class RuleRefused(ValueError):
    """A rule OnCall refuses: ``field`` and the text (OnCall's) for a 400."""

    def __init__(self, field: str, text: str):
        super().__init__(text)
        self.field = field
        self.text = text


@dataclass(frozen=True)
class NotificationStep:
    """One step of a user's rules: wait ``duration`` seconds, or notify through a channel."""

    type: str
    duration: int | None = None

    @property
    def channel(self) -> Channel | None:
        return CHANNELS[self.type.removeprefix(NOTIFY_BY)] if self.type != WAIT else None

    def as_dict(self) -> dict:
        return {"type": self.type, "duration": self.duration} if self.type == WAIT else {"type": self.type}


# OnCall's transient default when a list is empty: one email.
FALLBACK_STEPS = (NotificationStep(NOTIFY_BY + "email"),)


def make_step(step_type: str, duration: int | None = None) -> NotificationStep:
    """A valid step (a wait without duration waits 5 minutes); ``RuleRefused`` otherwise."""
    if step_type not in RULE_TYPES:
        raise RuleRefused("type", "Invalid type")
    if step_type != WAIT:
        if duration is not None:
            raise RuleRefused("duration", "Duration can't be set")
        return NotificationStep(step_type)
    duration = DEFAULT_WAIT if duration is None else duration
    if duration not in WAIT_DURATIONS:
        raise RuleRefused("duration", f'"{duration}" is not a valid choice.')
    return NotificationStep(WAIT, duration)


class NotificationRules(Aggregate):
    """A user's rules: ``default`` and ``important`` lists, each in order ({"id", "step"})."""

    @event("Created")
    def __init__(self, user_id: UUID):
        self.user_id = user_id
        self.default: list[dict] = []
        self.important: list[dict] = []

    @staticmethod
    def create_id(user_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/users/{user_id}/notification-rules")

    def listed(self, important: bool) -> list[dict]:
        return self.important if important else self.default

    def find(self, rule_id: UUID) -> tuple[bool, int] | None:
        """Which list a rule is in (important or not) and where; None if it is in neither."""
        for important in (False, True):
            for index, rule in enumerate(self.listed(important)):
                if rule["id"] == rule_id:
                    return important, index
        return None

    @event("RuleAdded")
    def add_rule(self, rule_id: UUID, important: bool, step: dict, position: int) -> None:
        self.listed(important).insert(position, {"id": rule_id, "step": dict(step)})

    @event("RuleChanged")
    def change_rule(self, rule_id: UUID, step: dict) -> None:
        important, index = self.find(rule_id)
        self.listed(important)[index]["step"] = dict(step)

    @event("RuleMoved")
    def move_rule(self, rule_id: UUID, position: int) -> None:
        important, index = self.find(rule_id)
        rules = self.listed(important)
        rules.insert(position, rules.pop(index))

    @event("RuleRemoved")
    def remove_rule(self, rule_id: UUID) -> None:
        important, index = self.find(rule_id)
        del self.listed(important)[index]


def rules_for(user_rules: NotificationRules | None, important: bool) -> list[NotificationStep]:
    """The steps to follow for a user (``None``: one without rules) and the list an escalation
    step asks for; OnCall's fallback, one email, when that list is empty."""
    listed = user_rules.listed(important) if user_rules is not None else []
    return [NotificationStep(**rule["step"]) for rule in listed] or list(FALLBACK_STEPS)


def shown_channels(channels: dict[str, str] | None, full: bool) -> dict[str, str]:
    """A user's channel addresses as a viewer sees them: ``full`` (the owner, admins) the masked
    address, anyone else the service's scheme only (``tgram://****************``)."""
    channels = channels or {}
    if full:
        return dict(channels)
    return {slot: f"{shown.partition('://')[0]}://{MASK}" for slot, shown in channels.items()}


# --- commands -------------------------------------------------------------------------------------


class NotificationRuleCommands:
    """Mixed into ``Configuration``: personal notification rules and channel addresses.

    Each command loads, decides and saves (again on a version conflict) and returns the position of
    what it recorded (None: nothing changed); ``add_notification_rule`` returns the new id too. A
    deleted user's rules and addresses cannot be changed (``AggregateNotFoundError``).
    """

    def _notification_saved(self, *aggregates) -> int | None:
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    def _notified_user(self, user_id: UUID) -> User:
        user = self.repository.get(user_id)
        if not isinstance(user, User) or user.deleted:
            raise AggregateNotFoundError(user_id)
        return user

    def notification_rules(self, user_id: UUID) -> NotificationRules | None:
        """A user's rules (None: the user never had any), for ``rules_for``."""
        try:
            return self.repository.get(NotificationRules.create_id(user_id))
        except AggregateNotFoundError:
            return None

    def _rules_to_change(self, user_id: UUID) -> NotificationRules:
        self._notified_user(user_id)
        return self.notification_rules(user_id) or NotificationRules(user_id=user_id)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def add_notification_rule(
        self, user_id: UUID, important: bool, step: NotificationStep, position: int | None = None
    ) -> tuple[UUID, int | None]:
        """Add a rule at ``position`` of its list (None or -1: last; past the end: last)."""
        rules = self._rules_to_change(user_id)
        listed = rules.listed(important)
        if len(listed) >= MAX_RULES:
            raise RuleRefused("detail", f"A user has at most {MAX_RULES} rules in each list")
        rule_id = uuid4()
        rules.add_rule(rule_id=rule_id, important=important, step=step.as_dict(),
                       position=insert_position(position, len(listed)))  # fmt: skip
        return rule_id, self._notification_saved(rules)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def change_notification_rule(
        self,
        user_id: UUID,
        rule_id: UUID,
        step: NotificationStep | None = None,
        position: int | None = None,
        swap: bool = False,
    ) -> int | None:
        """Change a rule's step and/or move it to ``position`` (-1 or past the end: last). With
        ``swap`` (OnCall's ``manual_order``, for Terraform) it trades places with the rule there."""
        rules = self._rules_to_change(user_id)
        found = rules.find(rule_id)
        if found is None:
            raise AggregateNotFoundError(rule_id)
        important, index = found
        listed = rules.listed(important)
        if step is not None and step.as_dict() != listed[index]["step"]:
            rules.change_rule(rule_id=rule_id, step=step.as_dict())
        if position is not None:
            target = insert_position(position, len(listed) - 1)
            if target != index:
                other = listed[target]["id"]
                rules.move_rule(rule_id=rule_id, position=target)
                if swap:  # the rule that was there takes the moved rule's old place
                    rules.move_rule(rule_id=other, position=index)
        return self._notification_saved(rules)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def remove_notification_rule(self, user_id: UUID, rule_id: UUID) -> int | None:
        rules = self._rules_to_change(user_id)
        if rules.find(rule_id) is None:
            raise AggregateNotFoundError(rule_id)
        rules.remove_rule(rule_id=rule_id)
        return self._notification_saved(rules)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def change_notification_channels(self, user_id: UUID, changes: dict[str, dict | None]) -> int | None:
        """Set (``{"url", "shown"}``, already checked) or clear (None) a user's channel
        addresses, by slot (``ADDRESS_SLOTS``); other slots keep theirs."""
        unknown = set(changes) - set(ADDRESS_SLOTS)
        if unknown:
            raise RuleRefused(min(unknown), "Unknown channel")
        user = self._notified_user(user_id)
        channels = dict(user.notification_channels)
        for slot, address in changes.items():
            if address is None:
                channels.pop(slot, None)
            else:
                channels[slot] = {"url": address["url"], "shown": address["shown"]}
        user.change_notification_channels(channels)
        return self._notification_saved(user)


# --- messages -------------------------------------------------------------------------------------


def notification_message(
    type_slug: str,
    custom_templates: dict,
    payload: Any,
    channel: str,
    integration_name: str,
    alert_group_number: int | None = None,
    link: str | None = None,
) -> dict[str, str]:
    """A notification's ``title``, ``body`` and ``format`` for ``channel`` (a ``CHANNELS`` name),
    from the integration's templates for that channel (OnCall's defaults for those not
    customised), as OnCall renders them. Channels with a title only (SMS, phone call) send the
    title as the body; a missing title takes the body's first line. Pure and picklable: run it
    in a render worker (``adapters.notify_channels.render_message``) for the hard limits."""
    target = CHANNELS[channel]
    rendered = render_appearance(
        get_type(type_slug), custom_templates, payload, target.templates,
        integration_name=integration_name, alert_group_number=alert_group_number, link=link,
    )  # fmt: skip
    title = (rendered["title"] or "").strip()
    body = (rendered["message"] or "").strip()
    if not title:
        title = body.splitlines()[0] if body else f"Alert group from {integration_name}"
    return {"title": title, "body": body or title, "format": target.body_format}

