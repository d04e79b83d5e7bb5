"""API tokens by hash, for authenticating API requests, and the list `tocsin token list` shows."""

from __future__ import annotations

from functools import singledispatchmethod
from uuid import UUID

from domain.configuration import ApiToken
from domain.ids import PREFIX_API_TOKEN, public_id
from projections.db import Cursor, Database, iso
from projections.runner import Projection


class ApiTokensView(Projection):
    name = "api_tokens"
    upstream = "config"
    tables = ("api_tokens",)

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Integration events are another view's."""

    @apply.register
    def _(self, e: ApiToken.Created, cur: Cursor, position: int) -> None:
        user_id = getattr(e, "user_id", None)  # tokens created before users belong to no one
        cur.execute(
            "INSERT INTO api_tokens (token_hash, uuid, name, role, created_at, user_uuid) VALUES (%s, %s, %s, %s, %s, %s)",
            (e.token_hash, str(e.originator_id), e.name, e.role, iso(e.created_at), user_id and str(user_id)),
        )

    @apply.register
    def _(self, e: ApiToken.Revoked, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE api_tokens SET revoked = 1, revoked_at = %s WHERE uuid = %s", (iso(e.at), str(e.originator_id))
        )


def api_tokens_listing(db: Database) -> list[dict]:
    """Every token, oldest first: ``id`` (public, ``K...``), ``uuid``, name, role, created_at,
    revoked_at (None while valid). Never the secret or its hash."""
    rows = db.query("SELECT uuid, name, role, created_at, revoked, revoked_at FROM api_tokens ORDER BY created_at, uuid")
    return [
        {
            "id": public_id(PREFIX_API_TOKEN, UUID(row["uuid"])),
            "uuid": row["uuid"],
            "name": row["name"],
            "role": row["role"],
            "created_at": row["created_at"],
            # Revoked before revocation times were kept: revoked, time unknown.
            "revoked_at": row["revoked_at"] or ("unknown" if row["revoked"] else None),
        }
        for row in rows
    ]
