"""Acting on an alert group from a notification: signed action links and the reply address.

Every notification about an alert group carries four links, one per action (acknowledge,
resolve, silence for 30 minutes, unacknowledge), made for the user it is sent to. A link is
``<TOCSIN_BASE_URL>/a/<token>``; the token is signed with itsdangerous (as Flask signs its
sessions) under the secret key of ``adapters.settings.secret_key`` and a salt of its own, and
names one user, one alert group, one action and an expiry. Changing any of them breaks the
signature, so a token cannot be turned into another action, group or user; a session cookie
(another salt) is no token and no token is a session cookie.

A token is not single-use: it works again until it expires. Storing every used token would buy
little, since acting twice is refused by the group's own state ("Can't acknowledge an
acknowledged alert group"), and acknowledging again after an unacknowledge is what the user who
holds the link meant. What a token does not outlive: its expiry (``TOCSIN_ACTION_LINK_LIFETIME``,
7 days), the user's deletion, the user's role dropping to viewer (both checked when it acts),
and a change of the secret key.

The reply address (``ack+<reply token>@<mail domain>``) lets the user answer the notification
email: a first word "ack", "acknowledge" or "resolve" acts as the matching link would. Its token
has its own salt and names a user, a group and an expiry, not an action: the reply says which.
It is short and case-insensitive (uppercase letters and digits, 60 characters with ``ack+``),
because a mail address's local part may not exceed 64 characters and relays may change its case.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from itsdangerous import BadData, Signer, URLSafeSerializer

from adapters.settings import Settings, secret_key
from domain.commands import Acknowledge, GroupAction, Resolve, Silence, Unacknowledge
from domain.configuration import ROLES
from domain.ids import (
    PREFIX_ALERT_GROUP,
    PREFIX_USER,
    PUBLIC_ID_ALPHABET,
    PUBLIC_ID_LENGTH,
    public_id,
)

PATH_PREFIX = "/a/"
SILENCE_SECONDS = 30 * 60
# The actions a notification links to, each to the command it runs (silence: for 30 minutes).
ACTIONS: dict[str, type[GroupAction]] = {
    "acknowledge": Acknowledge,
    "resolve": Resolve,
    "silence": Silence,
    "unacknowledge": Unacknowledge,
}
# What each action is called on a button and in a sentence.
ACTION_TITLES = {
    "acknowledge": "Acknowledge",
    "resolve": "Resolve",
    "silence": "Silence for 30 minutes",
    "unacknowledge": "Unacknowledge",
}
ACTING_ROLE = "editor"  # editors and admins act on alert groups, as in the API

LINK_SALT = "tocsin.action-link"
REPLY_SALT = "tocsin.reply-address"
REPLY_PREFIX = "ack+"
# Far above any token this module makes; refused before any work is done on it.
MAX_TOKEN_LENGTH = 1000
REPLY_SIGNATURE_CHARS = 20  # 100 bits of HMAC-SHA256, base32
_ID = f"[{PUBLIC_ID_ALPHABET}]{{{PUBLIC_ID_LENGTH}}}"
_REPLY_TOKEN = re.compile(
    rf"(?P<group>{PREFIX_ALERT_GROUP}{_ID})\.(?P<user>{PREFIX_USER}{_ID})\.(?P<expires>[0-9A-Z]{{1,8}})"
    rf"\.(?P<signature>[A-Z2-7]{{{REPLY_SIGNATURE_CHARS}}})"
)
# The first word of a reply, to the action it asks for.
REPLY_WORDS = {"ack": "acknowledge", "acknowledge": "acknowledge", "resolve": "resolve"}


class InvalidToken(Exception):
    """Not a token this server made: changed, cut short, or signed with another key."""


class ExpiredToken(InvalidToken):
    def __init__(self, expires_at: datetime):
        super().__init__(f"expired at {expires_at.isoformat()}")
        self.expires_at = expires_at


@dataclass(frozen=True)
class ActionToken:
    """What an action link's token grants: ``action`` on the group ``group_id`` (``I...``), as
    the user ``user_id`` (called ``username`` when the link was made), until ``expires_at``."""

    user_id: UUID
    username: str
    group_id: str
    action: str
    expires_at: datetime


@dataclass(frozen=True)
class ReplyToken:
    """What a reply address grants: the actions of ``REPLY_WORDS`` on ``group_id``, as the user
    ``user_id`` (``U...``), until ``expires_at``."""

    user_id: str
    group_id: str
    expires_at: datetime


# --- action links ------------------------------------------------------------------------------


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(
        secret_key(settings),
        salt=LINK_SALT,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
    )


def _expiry(settings: Settings, now: datetime) -> int:
    return int((now + timedelta(seconds=settings.action_link_lifetime)).timestamp())


def action_token(settings: Settings, user_id: UUID, username: str, group_public_id: str, action: str, now: datetime) -> str:
    """The signed token of one action on one group for one user, expiring after the lifetime."""
    if action not in ACTIONS:
        raise ValueError(f"no action link for {action!r}; one of {', '.join(ACTIONS)}")
    claims = {"u": user_id.hex, "n": username, "g": group_public_id, "a": action, "e": _expiry(settings, now)}
    return _serializer(settings).dumps(claims)


def action_link(settings: Settings, user_id: UUID, username: str, group_public_id: str, action: str, now: datetime) -> str:
    """The absolute URL that shows ``action`` on the group to ``username`` and does it on a POST."""
    return settings.base_url + PATH_PREFIX + action_token(settings, user_id, username, group_public_id, action, now)


def action_links(settings: Settings, user_id: UUID, username: str, group_public_id: str, now: datetime) -> dict[str, str]:
    """The link of every action of ``ACTIONS``, by action (silence: for 30 minutes)."""
    return {action: action_link(settings, user_id, username, group_public_id, action, now) for action in ACTIONS}


def read_action_token(settings: Settings, token: str, now: datetime) -> ActionToken:
    """What ``token`` grants; ``InvalidToken`` unless this server signed it, ``ExpiredToken``
    once it has expired (checked only after the signature)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("not a token")
    try:
        claims = _serializer(settings).loads(token)
    except (BadData, ValueError, UnicodeError) as exc:
        raise InvalidToken("bad signature") from exc
    try:
        grant = ActionToken(
            user_id=UUID(hex=claims["u"]),
            username=str(claims["n"]),
            group_id=str(claims["g"]),
            action=str(claims["a"]),
            expires_at=datetime.fromtimestamp(int(claims["e"]), UTC),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # signed by us, but not a claim set
        raise InvalidToken("not an action token") from exc
    if grant.action not in ACTIONS:
        raise InvalidToken("unknown action")
    if now >= grant.expires_at:
        raise ExpiredToken(grant.expires_at)
    return grant


# --- the reply address -------------------------------------------------------------------------


def _reply_signature(settings: Settings, value: str) -> str:
    signer = Signer(secret_key(settings), salt=REPLY_SALT, key_derivation="hmac", digest_method=hashlib.sha256)
    digest = signer.algorithm.get_signature(signer.derive_key(), value.encode())
    return base64.b32encode(digest).decode()[:REPLY_SIGNATURE_CHARS]


def _base36(number: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def reply_token(settings: Settings, user_id: UUID, group_public_id: str, now: datetime) -> str:
    """The token of a reply address: the user may act on the group by answering the email."""
    if not re.fullmatch(PREFIX_ALERT_GROUP + _ID, group_public_id):
        raise ValueError(f"not an alert group id: {group_public_id!r}")
    value = f"{group_public_id}.{public_id(PREFIX_USER, user_id)}.{_base36(_expiry(settings, now))}"
    return f"{value}.{_reply_signature(settings, value)}"


def reply_address(settings: Settings, token: str) -> str | None:
    """The ``Reply-To`` of a notification email, from ``reply_token``; None when no SMTP
    receiver runs to take the reply (``TOCSIN_SMTP_ADDRESS`` empty)."""
    if not settings.smtp_address:
        return None
    return f"{REPLY_PREFIX}{token}@{settings.mail_domain}"


def is_reply_local_part(local_part: str) -> bool:
    return local_part[: len(REPLY_PREFIX)].lower() == REPLY_PREFIX


def read_reply_token(settings: Settings, local_part: str, now: datetime) -> ReplyToken:
    """What the reply address with ``local_part`` (``ack+<token>``, any case) grants;
    ``InvalidToken`` or ``ExpiredToken`` as for a link."""
    match = _REPLY_TOKEN.fullmatch(local_part[len(REPLY_PREFIX) :].upper()) if is_reply_local_part(local_part) else None
    if match is None:
        raise InvalidToken("not a reply address")
    value = f"{match['group']}.{match['user']}.{match['expires']}"
    if not hmac.compare_digest(_reply_signature(settings, value), match["signature"]):
        raise InvalidToken("bad signature")
    expires_at = datetime.fromtimestamp(int(match["expires"], 36), UTC)
    if now >= expires_at:
        raise ExpiredToken(expires_at)
    return ReplyToken(user_id=match["user"], group_id=match["group"], expires_at=expires_at)


def reply_action(text: str) -> str | None:
    """The action a reply asks for: its first word that is not quoted (lines starting with ">"
    are), "ack", "acknowledge" or "resolve" in any case; None for anything else."""
    for line in text.splitlines():
        words = line.strip("\ufeff\u200b \t").split()
        if not words or words[0].startswith(">"):
            continue
        return REPLY_WORDS.get(words[0].strip(".,;:!?\"'()[]*_").casefold())
    return None


# --- acting ------------------------------------------------------------------------------------


def actor_refusal(user: dict | None, username: str) -> str | None:
    """Why the user row ``user`` (None: deleted) may not act now, or None when it may."""
    if user is None:
        return f"The user {username} no longer exists."
    if ROLES.index(user["role"]) < ROLES.index(ACTING_ROLE):
        return f"{user['username']} is a {user['role']}: only editors and admins can act on alert groups."
    return None


def command_for(action: str, group_id: UUID, by: str, at: datetime) -> GroupAction:
    """The command ``action`` runs on the group ``group_id`` as the user ``by``."""
    if action == "silence":
        return Silence(group_id=group_id, by=by, at=at, delay=SILENCE_SECONDS)
    return ACTIONS[action](group_id=group_id, by=by, at=at)
