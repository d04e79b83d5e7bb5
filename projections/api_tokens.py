"""API tokens by hash, for authenticating API requests."""

from __future__ import annotations

from functools import singledispatchmethod

from domain.configuration import ApiToken
from projections.db import Cursor, iso
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
        cur.execute(
            "INSERT INTO api_tokens (token_hash, uuid, name, role, created_at) VALUES (%s, %s, %s, %s, %s)",
            (e.token_hash, str(e.originator_id), e.name, e.role, iso(e.created_at)),
        )

    @apply.register
    def _(self, e: ApiToken.Revoked, cur: Cursor, position: int) -> None:
        cur.execute("UPDATE api_tokens SET revoked = 1 WHERE uuid = %s", (str(e.originator_id),))
