"""Queries for the dashboard and the Prometheus metrics: a searchable list, counts and insights.

Everything here reads the read models only. Durations are computed in Python from the stored
ISO-8601 text, which is the same on both backends (date arithmetic in SQL is not).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from projections.db import Database, iso
from projections.queries import ALERT_GROUP_ORDER, ALERT_GROUPS, Page, paginate

STATES = ("firing", "acknowledged", "resolved", "silenced")
# Timeline entry types (OnCall's log record types) that count as a response to a group.
TYPE_ACK, TYPE_SILENCE, TYPE_RESOLVED = 0, 7, 13
RESPONSE_TYPES = (TYPE_ACK, TYPE_SILENCE, TYPE_RESOLVED)
# OnCall computes its response-time histogram over the groups of the last seven days.
RESPONSE_TIME_PERIOD = timedelta(days=7)
MAX_SEARCH_LENGTH = 200
NOISIEST_LIMIT = 10


def parse_time(text: str | None) -> datetime | None:
    """Stored ISO text (``...Z``) as an aware datetime; None for None or something unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern that matches it anywhere, its own % and _ taken literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _group_filters(filters: dict, with_state: bool = True) -> tuple[list[str], list]:
    where, params = [], []
    if with_state and filters.get("state"):
        where.append("g.state = %s")
        params.append(filters["state"])
    if filters.get("integration_id"):
        where.append("g.integration_id = %s")
        params.append(filters["integration_id"])
    if filters.get("started_after"):
        where.append("g.started_at >= %s")
        params.append(filters["started_after"])
    if filters.get("started_before"):
        where.append("g.started_at < %s")
        params.append(filters["started_before"])
    if filters.get("search"):
        where.append("LOWER(g.title) LIKE %s ESCAPE '\\'")
        params.append(_like_pattern(filters["search"][:MAX_SEARCH_LENGTH]))
    return where, params


def group_list_page(db: Database, filters: dict, number: int, size: int, count: int | None = None) -> Page:
    """Alert groups for the dashboard's list, newest first: the API's filters plus a title search.

    ``filters``: ``state``, ``integration_id``, ``started_after``/``started_before`` (stored ISO
    text, the end excluded), ``search`` (case-insensitive, in titles). ``count``, when the caller
    knows how many groups match (from ``state_counts``), saves counting them again.
    """
    where, params = _group_filters(filters)
    if count is None:
        return paginate(db, ALERT_GROUPS, where, params, ALERT_GROUP_ORDER, number, size)
    number = min(max(number, 1), max(1, -(-count // size)))  # a page too far: the last, as paginate
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.query(
        f"{ALERT_GROUPS}{clause} ORDER BY {ALERT_GROUP_ORDER} LIMIT %s OFFSET %s", [*params, size, (number - 1) * size]
    )
    return Page(rows=rows, count=count, number=number, size=size)


def state_counts(db: Database, filters: dict) -> dict[str, int]:
    """How many groups match ``filters`` in each state (the state filter itself ignored)."""
    where, params = _group_filters(filters, with_state=False)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.query(f"SELECT g.state, COUNT(*) AS n FROM alert_groups g{clause} GROUP BY g.state", params)
    counts = dict.fromkeys(STATES, 0)
    counts.update({row["state"]: int(row["n"]) for row in rows})
    return counts


def alert_groups_version(db: Database) -> int:
    """Where the alert-group view is in its upstream: its rows change only when this moves, so
    what was read at one version can be served again while it stays."""
    row = db.query_one(
        "SELECT position FROM projection_tracking WHERE projection = %s AND upstream = %s",
        ("alert_groups", "alerting"),
    )
    return int(row["position"]) if row else 0


def alerts_of_group(db: Database, alert_group_id: str, limit: int) -> list[dict]:
    """The group's newest ``limit`` alerts, newest first."""
    return db.query(
        "SELECT id, created_at, is_resolve_signal, payload FROM alerts WHERE alert_group_id = %s"
        " ORDER BY position DESC LIMIT %s",
        (alert_group_id, limit),
    )


def first_alert_payload(db: Database, alert_group_id: str) -> str | None:
    row = db.query_one(
        "SELECT payload FROM alerts WHERE alert_group_id = %s ORDER BY position LIMIT 1", (alert_group_id,)
    )
    return row["payload"] if row else None


def integration_names(db: Database) -> dict[str, str]:
    """Live integrations' public ids and names, in creation order."""
    rows = db.query("SELECT id, name FROM integrations WHERE deleted = 0 ORDER BY created_at, id")
    return {row["id"]: row["name"] for row in rows}


# --- metrics ------------------------------------------------------------------------------------


def groups_by_integration_and_state(db: Database) -> dict[tuple[str, str], int]:
    """``{(integration public id, state): count}`` over every alert group."""
    rows = db.query(
        "SELECT integration_id, state, COUNT(*) AS n FROM alert_groups GROUP BY integration_id, state"
    )
    return {(row["integration_id"], row["state"]): int(row["n"]) for row in rows}


class FirstResponses:
    """Each recent alert group's first response (acknowledge, silence or resolve), counted into a
    histogram per integration and kept up to date incrementally: timeline entries are only
    appended, in event order, so each call reads the entries after the last one it saw (indexed
    by position), and groups leave the histogram as their start falls out of the period. A call
    costs the new entries and the groups leaving, not every group. One per process.
    """

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds  # ascending upper bounds, in seconds; +Inf is the count
        self._lock = threading.Lock()
        self._position = 0
        self._groups: dict[str, tuple[str, float, float]] = {}  # id -> (integration, started, seconds)
        self._by_start: list[tuple[float, str]] = []  # a heap: the next group to leave on top
        self._counts: dict[str, Histogram] = {}  # per integration, buckets not yet cumulative

    def histogram(self, db: Database, start: datetime) -> dict[str, Histogram]:
        """Per integration, the seconds from start to first response of the groups started at
        or after ``start`` that have responded (OnCall's ``response_time``, set once), in
        cumulative buckets. ``start`` must not go back in time between calls."""
        cutoff = start.timestamp()
        marks = ", ".join(["%s"] * len(RESPONSE_TYPES))
        with self._lock:
            # A response is never earlier than its group's start: older entries cannot count.
            rows = db.query(
                "SELECT t.alert_group_id, t.position, t.created_at, g.integration_id, g.started_at"
                " FROM timeline t JOIN alert_groups g ON g.id = t.alert_group_id"
                f" WHERE t.position > %s AND t.type IN ({marks}) AND t.created_at >= %s ORDER BY t.position",
                (self._position, *RESPONSE_TYPES, iso(start)),
            )
            for row in rows:
                self._position = max(self._position, int(row["position"]))
                started, responded = parse_time(row["started_at"]), parse_time(row["created_at"])
                if started is None or responded is None or started.timestamp() < cutoff:
                    continue
                group_id, seconds = row["alert_group_id"], max(0.0, (responded - started).total_seconds())
                known = self._groups.get(group_id)
                if known is not None:
                    if known[2] <= seconds:
                        continue  # a later response: the first one stands
                    self._count(known[0], known[2], -1)
                else:
                    heapq.heappush(self._by_start, (started.timestamp(), group_id))
                self._groups[group_id] = (row["integration_id"], started.timestamp(), seconds)
                self._count(row["integration_id"], seconds, 1)
            while self._by_start and self._by_start[0][0] < cutoff:
                _, group_id = heapq.heappop(self._by_start)
                integration, _, seconds = self._groups.pop(group_id)
                self._count(integration, seconds, -1)
            return {
                integration: Histogram(list(itertools.accumulate(counts.buckets)), counts.total, counts.count)
                for integration, counts in self._counts.items()
                if counts.count
            }

    def _count(self, integration: str, seconds: float, change: int) -> None:
        counts = self._counts.get(integration)
        if counts is None:
            counts = self._counts[integration] = Histogram([0] * len(self.bounds), 0.0, 0)
        slot = bisect.bisect_left(self.bounds, seconds)  # the first bound at or above it
        if slot < len(self.bounds):
            counts.buckets[slot] += change
        counts.total += change * seconds
        counts.count += change


@dataclass
class Histogram:
    buckets: list[int]  # how many at or below each bound (cumulative)
    total: float
    count: int


# --- insights -----------------------------------------------------------------------------------


@dataclass
class Insights:
    days: list[str]  # YYYY-MM-DD, oldest first, every day of the period
    per_day: dict[str, dict[str, int]]  # day -> state -> groups started that day, by current state
    total: int
    mean_time_to_acknowledge: float | None  # seconds; None when nothing was acknowledged
    acknowledged: int
    mean_time_to_resolve: float | None
    resolved: int
    noisiest: list[dict] = field(default_factory=list)  # title, integration_id, groups, alerts


def insights(db: Database, start: datetime, end: datetime, integration_id: str | None = None) -> Insights:
    """What happened to the groups started in ``[start, end)`` (aware UTC datetimes)."""
    filters = {"started_after": iso(start), "started_before": iso(end), "integration_id": integration_id}
    where, params = _group_filters(filters)
    clause = " AND ".join(where)

    days = []
    day = start.date()
    while day < end.date() or (day == end.date() and end.time() != datetime.min.time()):
        days.append(day.isoformat())
        day += timedelta(days=1)
    per_day = {d: dict.fromkeys(STATES, 0) for d in days}
    # The stored text starts with the UTC date: the same expression groups by day on both backends.
    for row in db.query(
        f"SELECT SUBSTR(g.started_at, 1, 10) AS day, g.state, COUNT(*) AS n FROM alert_groups g"
        f" WHERE {clause} GROUP BY SUBSTR(g.started_at, 1, 10), g.state",
        params,
    ):
        per_day.setdefault(row["day"], dict.fromkeys(STATES, 0))[row["state"]] = int(row["n"])

    acknowledge_seconds = []
    for row in db.query(
        "SELECT g.started_at, MIN(t.created_at) AS at FROM alert_groups g"
        " JOIN timeline t ON t.alert_group_id = g.id"
        f" WHERE {clause} AND t.type = %s GROUP BY g.id, g.started_at",
        [*params, TYPE_ACK],
    ):
        started, acknowledged = parse_time(row["started_at"]), parse_time(row["at"])
        if started and acknowledged:
            acknowledge_seconds.append(max(0.0, (acknowledged - started).total_seconds()))
    resolve_seconds = []
    for row in db.query(
        f"SELECT g.started_at, g.resolved_at FROM alert_groups g WHERE {clause} AND g.resolved = 1", params
    ):
        started, resolved = parse_time(row["started_at"]), parse_time(row["resolved_at"])
        if started and resolved:
            resolve_seconds.append(max(0.0, (resolved - started).total_seconds()))

    # A grouping is one (integration, grouping key): the groups its alerts opened, and their alerts.
    noisiest = db.query(
        "SELECT g.integration_id, g.distinction, COUNT(*) AS groups, SUM(g.alerts_count) AS alerts,"
        " MAX(g.title) AS title FROM alert_groups g"
        f" WHERE {clause} GROUP BY g.integration_id, g.distinction"
        " ORDER BY SUM(g.alerts_count) DESC, COUNT(*) DESC, g.integration_id, g.distinction LIMIT %s",
        [*params, NOISIEST_LIMIT],
    )
    return Insights(
        days=days,
        per_day={d: per_day[d] for d in days},
        total=sum(sum(counts.values()) for counts in per_day.values()),
        mean_time_to_acknowledge=_mean(acknowledge_seconds),
        acknowledged=len(acknowledge_seconds),
        mean_time_to_resolve=_mean(resolve_seconds),
        resolved=len(resolve_seconds),
        noisiest=[
            {
                "integration_id": row["integration_id"],
                "title": row["title"],
                "groups": int(row["groups"]),
                "alerts": int(row["alerts"] or 0),
            }
            for row in noisiest
        ],
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
