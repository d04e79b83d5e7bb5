"""``GET /metrics``: inbound counters in the Prometheus text format (0.0.4).

Unauthenticated, as Prometheus scrapes usually are: it shows integration public ids and counts,
never tokens. Counters come from the rate limiter's store (Redis: shared by every web process;
memory: this process since it started). Every live integration is listed, with zeros until it
receives something, so that Prometheus sees each series from its start.
"""

from __future__ import annotations

from datetime import UTC

from flask import Blueprint, Response

from web import runtime
from web.api.schedules import schedule_metrics
from web.health import follower_metrics
from web.ratelimit import LIMITS, Counts, limiter

metrics = Blueprint("metrics", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


@metrics.get("/metrics")
def prometheus_metrics():
    counts = limiter().counts()
    lines = _family(
        "tocsin_ratelimit_store_up",
        "gauge",
        "1 if the rate-limit counters can be reached; 0: requests are accepted without limits.",
    )
    lines.append(f"tocsin_ratelimit_store_up {0 if counts is None else 1}")
    if counts is not None:
        live = [row["id"] for row in runtime().db.query("SELECT id FROM integrations WHERE deleted = 0")]
        ids = sorted(set(live) | set(counts))
        lines += _family(
            "tocsin_inbound_accepted_total",
            "counter",
            "Inbound requests (alerts and heartbeats) that passed the rate limits.",
        )
        for integration_id in ids:
            tally = counts.get(integration_id, Counts())
            lines.append(f'tocsin_inbound_accepted_total{{integration="{_label(integration_id)}"}} {tally.accepted}')
        lines += _family(
            "tocsin_inbound_refused_total",
            "counter",
            "Inbound requests refused (429) by the per-integration or the total rate limit.",
        )
        for integration_id in ids:
            tally = counts.get(integration_id, Counts())
            refused = dict(zip(LIMITS, (tally.refused_integration, tally.refused_total)))
            for limit in LIMITS:
                lines.append(
                    f'tocsin_inbound_refused_total{{integration="{_label(integration_id)}",limit="{limit}"}}'
                    f" {refused[limit]}"
                )
    lines += alert_group_metrics(runtime().db)
    lines += schedule_metrics(_family, _label)  # gaps and empty shifts in the next 30 days
    lines += follower_metrics(_family, _label)  # ingest, projections, ticker: lag and errors
    return Response("\n".join(lines) + "\n", content_type=CONTENT_TYPE)


# --- alert groups (OnCall's alert-group metrics, under tocsin_ names) -------------------------

RESPONSE_TIME_BUCKETS = (60, 300, 600, 3600)  # seconds, OnCall's buckets


def alert_group_metrics(db) -> list[str]:
    """Groups by integration and state (gauge), and the response time of the last seven days'
    groups (histogram), from the read models: a grouped count and the new timeline entries."""
    from datetime import datetime

    from flask import current_app

    from projections.insights import (
        RESPONSE_TIME_PERIOD,
        STATES,
        FirstResponses,
        Histogram,
        groups_by_integration_and_state,
        integration_names,
    )

    names = integration_names(db)
    counts = groups_by_integration_and_state(db)
    ids = sorted(set(names) | {integration_id for integration_id, _ in counts})

    def labels(integration_id: str) -> str:
        name = names.get(integration_id, "")
        return f'integration="{_label(integration_id)}",integration_name="{_label(name)}"'

    lines = _family("tocsin_alert_groups_total", "gauge", "Alert groups by integration and current state.")
    for integration_id in ids:
        for state in STATES:
            lines.append(f'tocsin_alert_groups_total{{{labels(integration_id)},state="{state}"}} {counts.get((integration_id, state), 0)}')
    lines += _family(
        "tocsin_alert_groups_response_time_seconds",
        "histogram",
        "Seconds from start to the first acknowledge, silence or resolve, for the groups started in the last 7 days.",
    )
    responses = current_app.extensions.setdefault("tocsin_first_responses", FirstResponses(RESPONSE_TIME_BUCKETS))
    histograms = responses.histogram(db, datetime.now(UTC) - RESPONSE_TIME_PERIOD)
    for integration_id in sorted(set(ids) | set(histograms)):
        histogram = histograms.get(integration_id) or Histogram([0] * len(RESPONSE_TIME_BUCKETS), 0.0, 0)
        for bound, within in zip(RESPONSE_TIME_BUCKETS, histogram.buckets):
            lines.append(f'tocsin_alert_groups_response_time_seconds_bucket{{{labels(integration_id)},le="{bound}"}} {within}')
        lines.append(f'tocsin_alert_groups_response_time_seconds_bucket{{{labels(integration_id)},le="+Inf"}} {histogram.count}')
        lines.append(f"tocsin_alert_groups_response_time_seconds_sum{{{labels(integration_id)}}} {histogram.total:g}")
        lines.append(f"tocsin_alert_groups_response_time_seconds_count{{{labels(integration_id)}}} {histogram.count}")
    return lines
