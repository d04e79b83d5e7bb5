"""Integration token → integration row, cached briefly, for every inbound path (HTTP, SMTP)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from adapters.expiring_cache import ExpiringCache
from domain.configuration import token_digest
from projections.db import Database
from projections.queries import integration_by_token_digest

TOKEN_CACHE_SECONDS = 5.0


class IntegrationDirectory:
    """Token to integration, cached briefly (a deleted integration stops answering within 5 s)."""

    def __init__(self, db: Callable[[], Database]) -> None:
        self._db = db
        self._cache = ExpiringCache(ttl=TOKEN_CACHE_SECONDS)

    def find(self, token: str) -> dict | None:
        digest = token_digest(token)
        integration = self._cache.get_or_load(digest, lambda: integration_by_token_digest(self._db(), digest))
        if integration is None or not hmac.compare_digest(integration["token"], token):
            return None
        return integration

    def forget(self) -> None:
        self._cache.clear()
