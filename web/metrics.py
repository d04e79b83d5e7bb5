"""``GET /metrics``: inbound counters in the Prometheus text format (0.0.4).

Unauthenticated, as Prometheus scrapes usually are: it shows integration public ids and counts,
never tokens. Counters come from the rate limiter's store (Redis: shared by every web process;
memory: this process since it started). Every live integration is listed, with zeros until it
receives something, so that Prometheus sees each series from its start.
"""

from __future__ import annotations

from flask import Blueprint, Response

from web import runtime
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
    return Response("\n".join(lines) + "\n", content_type=CONTENT_TYPE)
