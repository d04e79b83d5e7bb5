"""Identifiers: OnCall-style public ids and random secrets.

OnCall shows every resource as a prefix letter plus 12 characters from an alphabet without
``O`` and ``0``. Ours are derived from the aggregate's UUID, so the public id needs no
storage of its own and is the same on every replay.
"""

from __future__ import annotations

import secrets
import string
from functools import lru_cache
from uuid import UUID

PUBLIC_ID_ALPHABET = "ABCDEFGHIJKLMNPQRSTUVWXYZ123456789"
PUBLIC_ID_LENGTH = 12

PREFIX_ALERT = "A"
PREFIX_ALERT_GROUP = "I"
PREFIX_INTEGRATION = "C"
PREFIX_ROUTE = "R"
PREFIX_TEAM = "T"
PREFIX_USER = "U"
PREFIX_API_TOKEN = "K"

TOKEN_ALPHABET = string.ascii_letters + string.digits


@lru_cache(maxsize=65_536)  # the same groups, integrations and routes come up again and again
def public_id(prefix: str, uuid: UUID) -> str:
    """Encode the first 60 bits of a UUID in OnCall's public id alphabet (33^12 > 2^60)."""
    number = uuid.int >> 68
    chars = []
    for _ in range(PUBLIC_ID_LENGTH):
        number, rest = divmod(number, len(PUBLIC_ID_ALPHABET))
        chars.append(PUBLIC_ID_ALPHABET[rest])
    return prefix + "".join(reversed(chars))


def random_token(length: int = 32) -> str:
    """A URL-safe alphanumeric secret (integration tokens are part of a URL)."""
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(length))
