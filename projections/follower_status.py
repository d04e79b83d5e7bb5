"""Followers (ingest, escalation, the projection runners, the ticker) report how they fare; the web reads it.

In production each follower runs in its own process, so what it reports goes to the
``follower_status`` table: its errors (count, last text, since when it has been failing) and its
last success. ``/health`` and ``/metrics`` combine that with each follower's lag, the distance
between its upstream's newest event and the position it has reached.

Reporting is cheap: a failure is written at once (a failing follower backs off, so at most a few
writes a second), a success only when it ends a failure or every ``SUCCESS_EVERY_SECONDS``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from projections.db import Database, iso

log = logging.getLogger(__name__)

FOLLOWERS = ("ingest", "escalation", "project-alerting", "project-config", "ticker")
SUCCESS_EVERY_SECONDS = 5.0
# Failing for longer than this is stuck (a transient error heals within a retry or two).
STUCK_AFTER_SECONDS = 5.0
# Behind, and no success reported for this long: the follower is not running at all.
SILENT_AFTER_SECONDS = 30.0
ERROR_TEXT_LIMIT = 2000

RECORD_FAILURE = (
    "INSERT INTO follower_status (follower, error_count, last_error, last_error_at, failing_since)"
    " VALUES (%s, 1, %s, %s, %s) ON CONFLICT (follower) DO UPDATE SET"
    " error_count = follower_status.error_count + 1, last_error = excluded.last_error,"
    " last_error_at = excluded.last_error_at,"
    " failing_since = COALESCE(follower_status.failing_since, excluded.failing_since)"
)
RECORD_SUCCESS = (
    "INSERT INTO follower_status (follower, last_success_at) VALUES (%s, %s)"
    " ON CONFLICT (follower) DO UPDATE SET last_success_at = excluded.last_success_at, failing_since = NULL"
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class FollowerStatus:
    """One follower's reporter. Never raises: reporting must not stop the follower."""

    def __init__(self, db: Database, follower: str):
        self.db = db
        self.follower = follower
        self._failing: bool | None = None  # unknown: the first success clears a previous run's failure
        self._success_written = 0.0

    def succeeded(self) -> None:
        now = time.monotonic()
        if self._failing is False and now - self._success_written < SUCCESS_EVERY_SECONDS:
            return
        try:
            with self.db.transaction() as cur:
                cur.execute(RECORD_SUCCESS, (self.follower, iso(_now())))
        except Exception as exc:  # the database may be what fails; the next success retries
            log.debug("could not report %s's success: %s", self.follower, exc)
            return
        self._failing = False
        self._success_written = now

    def failed(self, exc: BaseException) -> None:
        self._failing = True
        text = f"{type(exc).__name__}: {exc}".strip()[:ERROR_TEXT_LIMIT]
        at = iso(_now())
        try:
            with self.db.transaction() as cur:
                cur.execute(RECORD_FAILURE, (self.follower, text, at, at))
        except Exception as report_exc:  # e.g. the database is down: that is what /health shows then
            log.debug("could not report %s's failure: %s", self.follower, report_exc)


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def follower_states(db: Database, lags: dict[str, int | None]) -> dict[str, dict]:
    """Every follower's state: its report and its lag (``None``: the follower has no upstream).

    A follower is ``stuck`` when it has been failing for longer than ``STUCK_AFTER_SECONDS``, or
    when it is behind and has reported no success for ``SILENT_AFTER_SECONDS`` (not running).
    """
    rows = {row["follower"]: row for row in db.query("SELECT * FROM follower_status")}
    now = _now()
    states = {}
    for follower in sorted(set(FOLLOWERS) | set(rows)):
        row = rows.get(follower, {})
        lag = lags.get(follower)
        failing_since = _parse(row.get("failing_since"))
        last_success = _parse(row.get("last_success_at"))
        failing_too_long = failing_since is not None and now - failing_since > timedelta(seconds=STUCK_AFTER_SECONDS)
        silent = bool(lag) and (last_success is None or now - last_success > timedelta(seconds=SILENT_AFTER_SECONDS))
        states[follower] = {
            "lag": lag,
            "stuck": failing_too_long or silent,
            "error_count": int(row.get("error_count") or 0),
            "last_error": row.get("last_error"),
            "last_error_at": row.get("last_error_at"),
            "failing_since": row.get("failing_since"),
            "last_success_at": row.get("last_success_at"),
        }
    return states
