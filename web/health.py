"""``GET /health`` and the followers' metrics: what the pipeline's processes report, and their lag.

200 with the details while the database answers and no follower is stuck; 503 (JSON) when the
database is unreachable or a follower is stuck (failing for more than a few seconds, or behind
and silent), so that a load balancer or a probe sees it. A few small queries per call.
"""

from __future__ import annotations

from flask import jsonify

from web import runtime
from web.outages import database_unavailable


def _answer(body: dict, status: int):
    response = jsonify(body)
    response.status_code = status
    return response


def health():
    unreachable = {"status": "unavailable", "database": "unreachable"}
    if not runtime().database_reachable():
        return _answer(unreachable, 503)
    try:
        followers = runtime().follower_states()
    except Exception as exc:
        if database_unavailable(exc):
            return _answer(unreachable, 503)
        raise
    stuck = sorted(name for name, state in followers.items() if state["stuck"])
    body = {"status": "stuck" if stuck else "ok", "database": "reachable", "followers": followers}
    if stuck:
        body["stuck"] = stuck
    return _answer(body, 503 if stuck else 200)


FOLLOWER_SERIES = (  # (name, type, state field, help)
    ("tocsin_follower_lag", "gauge", "lag",
     "Events the follower has yet to handle (its upstream's newest minus its position)."),
    ("tocsin_follower_errors_total", "counter", "error_count",
     "Failures the follower has reported (each retried)."),
    ("tocsin_follower_stuck", "gauge", "stuck",
     "1 while the follower is stuck (failing for seconds, or behind and silent)."),
)


def follower_metrics(family, label) -> list[str]:
    """Prometheus lines for every follower: lag (gauge), errors (counter), stuck (gauge)."""
    followers = runtime().follower_states()
    lines = []
    for name, kind, field, help_text in FOLLOWER_SERIES:
        lines += family(name, kind, help_text)
        for follower, state in followers.items():
            if state[field] is not None:  # the ticker has no lag
                lines.append(f'{name}{{follower="{label(follower)}"}} {int(state[field])}')
    return lines
