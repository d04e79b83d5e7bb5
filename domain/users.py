"""Users and teams: who acts (every API token belongs to a user) and who belongs together.

A user has one role (admin, editor or viewer) and belongs to any number of teams. Usernames,
emails and team names are unique regardless of case; uniqueness is held by a ``NameClaim``
aggregate per name, saved in the same transaction as the change that takes or frees the name, so
two concurrent creations of one name cannot both commit (a check against a read model could not
promise that).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import available_timezones

from eventsourcing.domain import Aggregate, event

from domain.configuration import ROLES

DEFAULT_TIMEZONE = "UTC"

# What a claim is for; also the field a refusal names.
CLAIM_USERNAME = "username"
CLAIM_EMAIL = "email"
CLAIM_TEAM_NAME = "name"


class NameTaken(Exception):
    """Another user (or team) holds the name: a field error on ``field``."""

    def __init__(self, kind: str, field: str):
        super().__init__(f"{kind} with this {field} already exists.")  # Django REST framework's text
        self.field = field


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA zone this system knows (looked up in the list, so no text a
    user sends is ever used as a file path)."""
    return name in _timezones()


def check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")


def check_timezone(timezone: str) -> None:
    if not is_timezone(timezone):
        raise ValueError(f"{timezone!r} is not a known IANA time zone")


def name_key(name: str) -> str:
    """How names compare: case does not count (Grafana's logins, e-mail addresses)."""
    return name.casefold()


class User(Aggregate):
    @event("Created")
    def __init__(
        self,
        username: str,
        email: str | None,
        role: str,
        timezone: str,
        team_ids: list[UUID],
        created_at: datetime,
    ):
        check_role(role)
        check_timezone(timezone)
        self.username = username
        self.email = email
        self.role = role
        self.timezone = timezone
        self.team_ids = list(team_ids)
        self.created_at = created_at
        self.deleted = False

    @event("Updated")
    def _updated(self, username: str, email: str | None, role: str, timezone: str) -> None:
        self.username = username
        self.email = email
        self.role = role
        self.timezone = timezone

    def update(self, username: str, email: str | None, role: str, timezone: str) -> bool:
        """Change the profile; False (and no event) when nothing differs."""
        check_role(role)
        check_timezone(timezone)
        if (username, email, role, timezone) == (self.username, self.email, self.role, self.timezone):
            return False
        self._updated(username=username, email=email, role=role, timezone=timezone)
        return True

    @event("TeamsChanged")
    def _teams_changed(self, team_ids: list[UUID]) -> None:
        self.team_ids = list(team_ids)

    def change_teams(self, team_ids: list[UUID]) -> bool:
        """Belong to exactly ``team_ids`` (duplicates dropped, order kept); False if unchanged."""
        team_ids = list(dict.fromkeys(team_ids))
        if team_ids == self.team_ids:
            return False
        self._teams_changed(team_ids=team_ids)
        return True

    @property
    def notification_channels(self) -> dict[str, dict]:
        """Channel addresses by slot (``domain.notification_rules``), each {"url", "shown"}; a
        copy (users recorded before there were channels have none)."""
        return dict(self.__dict__.get("_notification_channels", {}))

    @event("NotificationChannelsChanged")
    def _notification_channels_changed(self, channels: dict[str, dict]) -> None:
        self._notification_channels = dict(channels)

    def change_notification_channels(self, channels: dict[str, dict]) -> bool:
        """Hold exactly ``channels``; False (and no event) when nothing differs."""
        if channels == self.notification_channels:
            return False
        self._notification_channels_changed(channels=dict(channels))
        return True

    @event("Deleted")
    def delete(self, at: datetime) -> None:
        self.deleted = True


class Team(Aggregate):
    @event("Created")
    def __init__(self, name: str, email: str | None, avatar_url: str | None, created_at: datetime):
        self.name = name
        self.email = email
        self.avatar_url = avatar_url
        self.created_at = created_at
        self.deleted = False

    @event("Updated")
    def _updated(self, name: str, email: str | None, avatar_url: str | None) -> None:
        self.name = name
        self.email = email
        self.avatar_url = avatar_url

    def update(self, name: str, email: str | None, avatar_url: str | None) -> bool:
        if (name, email, avatar_url) == (self.name, self.email, self.avatar_url):
            return False
        self._updated(name=name, email=email, avatar_url=avatar_url)
        return True

    @event("Deleted")
    def delete(self, at: datetime) -> None:
        self.deleted = True


class NameClaim(Aggregate):
    """One unique name (``kind`` and its case-folded text) and who holds it, if anyone."""

    @event("Created")
    def __init__(self, kind: str, key: str, holder_id: UUID):
        self.kind = kind
        self.key = key
        self.holder_id: UUID | None = holder_id

    @staticmethod
    def create_id(kind: str, key: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/name-claims/{kind}/{key}")

    @event("Taken")
    def take(self, holder_id: UUID) -> None:
        self.holder_id = holder_id

    @event("Released")
    def release(self) -> None:
        self.holder_id = None


def claim_names(
    find: Callable[[UUID], NameClaim | None],
    holder_id: UUID,
    owner_kind: str,
    old: dict[str, str | None],
    new: dict[str, str | None],
) -> list[NameClaim]:
    """The claims to save with a change of ``holder_id``'s unique names from ``old`` to ``new``
    (field to name; None or a missing field: no such name). ``find`` loads a claim, None if there
    is none. Raises ``NameTaken`` when someone else holds one of the new names.
    """
    changed = []
    for field in dict.fromkeys([*new, *old]):
        old_key = name_key(old[field]) if old.get(field) else None
        new_key = name_key(new[field]) if new.get(field) else None
        if old_key == new_key:
            continue
        kind = f"{owner_kind}.{field}"
        if new_key is not None:
            claim = find(NameClaim.create_id(kind, new_key))
            if claim is None:
                claim = NameClaim(kind=kind, key=new_key, holder_id=holder_id)
            elif claim.holder_id is not None and claim.holder_id != holder_id:
                raise NameTaken(owner_kind, field)
            else:
                claim.take(holder_id=holder_id)
            changed.append(claim)
        if old_key is not None:
            claim = find(NameClaim.create_id(kind, old_key))
            if claim is not None and claim.holder_id == holder_id:
                claim.release()
                changed.append(claim)
    return changed
