"""Inbound rate limits, as Grafana OnCall applies them (reference §1.5).

Every counted request goes through two fixed windows: one per integration (default 300 per
5 minutes) and one across all integrations (default 900 per 5 minutes; OnCall's second limit is
per organisation, and a Tocsin installation is one). The integration window is checked first; a
request it refuses is not counted against the total, and a request the total refuses has used its
integration budget (OnCall's order). Alert POSTs and heartbeats (GET and POST) share the counters.

Counters live in Redis when ``TOCSIN_REDIS_URL`` is set (one Lua script per request: both
windows' INCR + EXPIRE and the statistics, one round trip), otherwise in this process's memory
(the embedded mode is one process). When Redis fails the request is accepted: letting a burst
through is better than losing an alert because the limiter is down.

The statistics (accepted, refused per limit, time of the first refusal) are kept per integration
for the integration's page and ``/metrics``.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Response, current_app

from adapters.settings import Settings

log = logging.getLogger(__name__)

EXTENSION = "tocsin.ratelimit"
LIMIT_INTEGRATION = "integration"
LIMIT_TOTAL = "total"
LIMITS = (LIMIT_INTEGRATION, LIMIT_TOTAL)

# OnCall's 429 texts (reference §1.5), trailing space included.
TEXT_INTEGRATION = (
    "Rate-limiting has been applied to your account because too many alerts were sent from your "
    "{integration} integration. Rate-limiting is activated so you will continue to receive alerts "
    "from other integrations. Read more about rate limits in our docs. "
)
TEXT_TOTAL = (
    "Rate-limiting has been applied to your account because too many alerts were sent from multiple "
    "integrations. Read more about rate limits in our docs. "
)
TEXT_HEARTBEAT = "We received too many heartbeats from integration and had to apply rate limiting."

WARN_INTERVAL_SECONDS = 60.0  # at most one "limiter unavailable" warning a minute
REDIS_BACKOFF_SECONDS = 5.0  # after a Redis failure, accept without asking it for this long
REDIS_TIMEOUT_SECONDS = 0.5

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT_NAMES = {"s": "second", "m": "minute", "h": "hour", "d": "day"}


@dataclass(frozen=True)
class Rate:
    """``count`` requests per fixed window of ``period`` seconds (OnCall's "300/5m" syntax)."""

    count: int
    period: int
    text: str

    @classmethod
    def parse(cls, text: str, setting: str) -> Rate:
        match = _RATE.match(text or "")
        if match is None or int(match[2] or 1) < 1:
            raise ValueError(f"{setting}={text!r} is not a rate such as '300/5m' (count/[n]s|m|h|d)")
        multiplier, unit = int(match[2] or 1), match[3]
        return cls(int(match[1]), multiplier * _UNIT_SECONDS[unit], f"{match[1]}/{match[2]}{unit}")

    def window(self, now: float) -> tuple[int, int]:
        """Start and end (epoch seconds) of the window holding ``now``."""
        start = int(now // self.period) * self.period
        return start, start + self.period

    def describe(self) -> str:
        match = _RATE.match(self.text)
        multiplier, unit = int(match[2] or 1), _UNIT_NAMES[match[3]]
        span = unit if multiplier == 1 else f"{multiplier} {unit}s"
        return f"{self.count} per {span}"


@dataclass(frozen=True)
class Counts:
    """One integration's statistics since the counters began."""

    accepted: int = 0
    refused_integration: int = 0
    refused_total: int = 0
    refused_since: str | None = None  # ISO 8601 UTC time of the first refusal

    @property
    def refused(self) -> int:
        return self.refused_integration + self.refused_total


class StoreUnavailable(Exception):
    pass


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MemoryStore:
    """Windows and statistics in this process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window start, count)
        self._counts: dict[str, dict] = {}

    def _incr(self, key: str, start: int) -> int:
        current_start, count = self._windows.get(key, (start, 0))
        count = count + 1 if current_start == start else 1
        self._windows[key] = (start, count)
        return count

    def hit(self, integration_id: str, per_integration: Rate, total: Rate, now: float) -> str | None:
        with self._lock:
            stats = self._counts.setdefault(integration_id, {"accepted": 0, LIMIT_INTEGRATION: 0, LIMIT_TOTAL: 0})
            refused = None
            if self._incr(f"i:{integration_id}", per_integration.window(now)[0]) > per_integration.count:
                refused = LIMIT_INTEGRATION
            elif self._incr("t", total.window(now)[0]) > total.count:
                refused = LIMIT_TOTAL
            if refused is None:
                stats["accepted"] += 1
            else:
                stats[refused] += 1
                stats.setdefault("since", _iso(now))
            return refused

    def counts(self, integration_id: str | None = None) -> dict[str, Counts]:
        with self._lock:
            items = [(i, s) for i, s in self._counts.items() if integration_id in (None, i)]
            return {
                i: Counts(s["accepted"], s[LIMIT_INTEGRATION], s[LIMIT_TOTAL], s.get("since")) for i, s in items
            }

    def close(self) -> None:
        pass


# KEYS: integration window, total window, accepted, refused:integration, refused:total, refused:since
# ARGV: integration limit, its TTL, total limit, its TTL, integration id, now (ISO)
# Returns 0 (accepted), 1 (refused by the integration limit) or 2 (refused by the total limit).
_HIT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
  redis.call('HSETNX', KEYS[6], ARGV[5], ARGV[6])
  return 1
end
local t = redis.call('INCR', KEYS[2])
if t == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
if t > tonumber(ARGV[3]) then
  redis.call('HINCRBY', KEYS[5], ARGV[5], 1)
  redis.call('HSETNX', KEYS[6], ARGV[5], ARGV[6])
  return 2
end
redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
return 0
"""


class RedisStore:
    """Windows and statistics in Redis, shared by every web process."""

    def __init__(self, url: str, prefix: str):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._errors = (redis.RedisError, OSError)
        self.prefix = prefix
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1),  # one immediate retry: a pooled connection may be stale
            decode_responses=True,
        )
        self._script = self.client.register_script(_HIT_SCRIPT)
        self._stats = {
            "accepted": f"{prefix}accepted",
            LIMIT_INTEGRATION: f"{prefix}refused:{LIMIT_INTEGRATION}",
            LIMIT_TOTAL: f"{prefix}refused:{LIMIT_TOTAL}",
            "since": f"{prefix}refused:since",
        }

    def hit(self, integration_id: str, per_integration: Rate, total: Rate, now: float) -> str | None:
        i_start, i_end = per_integration.window(now)
        t_start, t_end = total.window(now)
        keys = [
            f"{self.prefix}w:{LIMIT_INTEGRATION}:{per_integration.period}:{i_start}:{integration_id}",
            f"{self.prefix}w:{LIMIT_TOTAL}:{total.period}:{t_start}",
            *self._stats.values(),
        ]
        args = [
            per_integration.count, math.ceil(i_end - now) + 1,
            total.count, math.ceil(t_end - now) + 1,
            integration_id, _iso(now),
        ]  # fmt: skip
        try:
            outcome = int(self._script(keys=keys, args=args))
        except self._errors as exc:
            raise StoreUnavailable(str(exc)) from exc
        return (None, LIMIT_INTEGRATION, LIMIT_TOTAL)[outcome]

    def counts(self, integration_id: str | None = None) -> dict[str, Counts]:
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key in self._stats.values():
                    if integration_id is None:
                        pipe.hgetall(key)
                    else:
                        pipe.hget(key, integration_id)
                replies = pipe.execute()
        except self._errors as exc:
            raise StoreUnavailable(str(exc)) from exc
        if integration_id is not None:
            replies = [{integration_id: reply} if reply is not None else {} for reply in replies]
        accepted, by_integration, by_total, since = replies
        ids = set(accepted) | set(by_integration) | set(by_total)
        return {
            i: Counts(int(accepted.get(i, 0)), int(by_integration.get(i, 0)), int(by_total.get(i, 0)), since.get(i))
            for i in ids
        }

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Decision:
    refused_by: str | None = None  # None (accepted), "integration" or "total"
    retry_after: int = 0  # seconds until the refusing window ends


class RateLimiter:
    def __init__(self, settings: Settings):
        self.per_integration = Rate.parse(settings.ratelimit_integration, "TOCSIN_RATELIMIT_INTEGRATION")
        self.total = Rate.parse(settings.ratelimit_total, "TOCSIN_RATELIMIT_TOTAL")
        self.store: MemoryStore | RedisStore = (
            RedisStore(settings.redis_url, settings.ratelimit_redis_prefix) if settings.redis_url else MemoryStore()
        )
        self._lock = threading.Lock()
        self._last_warning = -math.inf
        self._skip_store_until = -math.inf

    def _unavailable(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self._skip_store_until = now + REDIS_BACKOFF_SECONDS
            if now - self._last_warning < WARN_INTERVAL_SECONDS:
                return
            self._last_warning = now
        log.warning("rate-limit counters unavailable, accepting requests without limits: %s", exc)

    def check(self, integration_id: str) -> Decision:
        """Count one request; fails open (accepts) when the counters cannot be reached."""
        if time.monotonic() < self._skip_store_until:
            return Decision()
        now = time.time()
        try:
            refused_by = self.store.hit(integration_id, self.per_integration, self.total, now)
        except StoreUnavailable as exc:
            self._unavailable(exc)
            return Decision()
        if refused_by is None:
            return Decision()
        rate = self.per_integration if refused_by == LIMIT_INTEGRATION else self.total
        return Decision(refused_by, max(1, math.ceil(rate.window(now)[1] - now)))

    def counts(self, integration_id: str | None = None) -> dict[str, Counts] | None:
        """Statistics per integration public id (None when the counters cannot be read)."""
        try:
            return self.store.counts(integration_id)
        except StoreUnavailable as exc:
            self._unavailable(exc)
            return None

    def close(self) -> None:
        self.store.close()


def limiter() -> RateLimiter:
    return current_app.extensions[EXTENSION]


def refuse_if_limited(integration: dict, heartbeat: bool = False) -> Response | None:
    """Count a request to ``integration``; the 429 answer when a limit refuses it, else None."""
    decision = limiter().check(integration["id"])
    if decision.refused_by is None:
        return None
    if heartbeat:
        text = TEXT_HEARTBEAT  # OnCall answers heartbeats with one text for both limits
    elif decision.refused_by == LIMIT_INTEGRATION:
        text = TEXT_INTEGRATION.format(integration=integration["name"])
    else:
        text = TEXT_TOTAL
    response = Response(text, status=429, mimetype="text/plain")
    response.headers["Retry-After"] = str(decision.retry_after)
    return response


def refused_note(integration: dict) -> str | None:
    """"N requests refused by the rate limit since <time>" for the integration's page, if any."""
    counts = limiter().counts(integration["id"])
    mine = (counts or {}).get(integration["id"])
    if mine is None or mine.refused == 0:
        return None
    rates = limiter()
    noun = "request" if mine.refused == 1 else "requests"
    return (
        f"{mine.refused} {noun} refused by the rate limit since {mine.refused_since} (limits: "
        f"{rates.per_integration.describe()} for this integration, {rates.total.describe()} for all integrations)."
    )
