#!/usr/bin/env python3
"""Dashboard benchmark: the alert-group list page against the JSON API's list, same page, same store.

Plain script, not a pytest test:

    python tests/benchmarks/bench_dashboard.py [--groups 10000] [--rounds 40]
                                               [--backend sqlite|postgres|both]
                                               [--database-url postgresql://...]

For each backend it fills a fresh store with ``--groups`` alert groups through the real pipeline
(inbox events, ingest, projections), a fifth of them acknowledged, then times, in one process
through Flask's test client (no network in either measurement):

* ``GET /api/v1/alert_groups/?perpage=25`` (the JSON API, with a token) and
* ``GET /?`` (the dashboard's list page, 25 rows, with a signed-in session),

for the first page, the first page filtered by state, a page deep in the list (each read again
and again, as a polling page does), a different page every round, and the first page after a
change (a group acknowledged, untimed, before each request: nothing read before is reusable).
Requests alternate between the two after a warm-up; it prints the median and p90 of each and the ratio
of the medians (target: the page within 2x the API). Everything it creates (the SQLite folder,
the PostgreSQL schema) is removed at the end.

Then it times ``GET /metrics`` on a store of ``--metrics-groups`` alert groups (100,000 by
default; 0: skip), all started in the last 6 days, four in five with a response. Those rows are
written straight into the read models, which is all the metrics read (through the pipeline,
100,000 groups take several minutes): the first scrape of a process, which reads the period's
responses once, and the median of the scrapes after it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from adapters.settings import Settings  # noqa: E402
from domain.inbox import ReceivedAlert  # noqa: E402
from projections.db import iso  # noqa: E402
from tocsin.cli import create_token, migrate  # noqa: E402
from tocsin.runtime import Runtime  # noqa: E402
from web import create_app  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_RATIO = 2.0
BATCH = 500
# (label, query for round n, change before each round): the same page again (what polls do: the
# page reuses what it read while the view has not moved on), a different page every round, and
# the first page after a group was acknowledged (untimed) before every round: nothing to reuse.
CASES = (
    ("first page", lambda n: "", False),
    ("state=acknowledged", lambda n: "state=acknowledged", False),
    ("page 200", lambda n: "page=200", False),
    ("new page each round", lambda n: f"page={n + 2}", False),
    ("after each change", lambda n: "", True),
)


def fill(runtime: Runtime, client, groups: int) -> str:
    created = client.post("/api/v1/integrations/", json={"type": "alertmanager", "name": "Bench"}).get_json()
    integration_uuid = UUID(runtime.db.query_one("SELECT uuid FROM integrations WHERE id = %s", (created["id"],))["uuid"])
    started = time.monotonic()
    for first in range(0, groups, BATCH):
        entries = []
        for index in range(first, min(first + BATCH, groups)):
            name = f"Bench{index:05d}"
            payload = {"status": "firing", "groupKey": f'{{}}:{{alertname="{name}"}}', "groupLabels": {"alertname": name},
                       "commonLabels": {"alertname": name, "instance": f"host-{index % 50}"},
                       "alerts": [{"status": "firing", "labels": {"alertname": name, "instance": f"host-{index % 50}"}}]}
            entries.append(ReceivedAlert(integration_id=integration_uuid, kind="alert",
                                         payload_json=json.dumps(payload, separators=(",", ":")),
                                         received_at=datetime.now(timezone.utc)))
        runtime.inbox.receive_alerts(entries)
        runtime.catch_up()
    rows = runtime.db.query("SELECT uuid FROM alert_groups ORDER BY position LIMIT %s", (groups // 5,))
    at = datetime.now(timezone.utc)
    for row in rows:  # a fifth acknowledged: the state filter and counts have something to do
        runtime.alerting.act(UUID(row["uuid"]), "acknowledge", by="bench", at=at)
    runtime.catch_up()
    count = runtime.db.query_one("SELECT COUNT(*) AS n FROM alert_groups")["n"]
    print(f"  filled {count} alert groups in {time.monotonic() - started:.1f}s", flush=True)
    return created["id"]


def sign_in(app, token: str):
    browser = app.test_client()
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', browser.get("/sign-in").get_data(as_text=True)).group(1)
    assert browser.post("/sign-in", data={"token": token, "csrf_token": csrf}).status_code == 303
    return browser


def timed(fetch, path: str) -> float:
    started = time.perf_counter()
    response = fetch(path)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, (path, response.status_code)
    return elapsed


@contextmanager
def fresh_store(backend: str, database_url: str) -> Iterator[Settings]:
    """Settings for a new, empty store (a temporary folder, a new schema), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="tocsin-bench-dashboard-"))
    schema = f"bench_dash_{uuid.uuid4().hex[:10]}"
    try:
        if backend == "sqlite":
            yield Settings(data_dir=folder / "var")
        else:
            yield Settings(database_url=database_url, database_schema=schema, data_dir=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if backend == "postgres":
            import psycopg

            with psycopg.connect(database_url, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(settings: Settings, groups: int, rounds: int) -> list[tuple[str, float, float]]:
    migrate(settings)
    runtime = Runtime(settings)
    try:
        app = create_app(runtime)
        token = create_token(runtime, "bench", "admin")
        api = app.test_client()
        api.environ_base["HTTP_AUTHORIZATION"] = token
        fill(runtime, api, groups)
        page = sign_in(app, token)
        runtime.start()  # the projections, as in `tocsin serve`: an action waits for its own event
        results = []
        fresh = iter(runtime.db.query("SELECT id FROM alert_groups WHERE state = 'firing' LIMIT 1000"))
        for label, query, change in CASES:
            for _ in range(5):  # warm-up: connections, template compilation
                timed(api.get, "/api/v1/alert_groups/?perpage=25&page=1")
                timed(page.get, "/?page=1")
            api_times, page_times = [], []
            for n in range(rounds):
                if change:
                    assert api.post(f"/api/v1/alert_groups/{next(fresh)['id']}/acknowledge").status_code == 200
                api_times.append(timed(api.get, f"/api/v1/alert_groups/?perpage=25&{query(n)}"))
                if change:
                    assert api.post(f"/api/v1/alert_groups/{next(fresh)['id']}/acknowledge").status_code == 200
                page_times.append(timed(page.get, f"/?{query(n)}"))
            api_median, page_median = statistics.median(api_times), statistics.median(page_times)
            p90 = lambda values: sorted(values)[int(len(values) * 0.9) - 1]  # noqa: E731
            print(f"  {label:<20} API {api_median * 1000:7.1f} ms (p90 {p90(api_times) * 1000:6.1f})"
                  f"   page {page_median * 1000:7.1f} ms (p90 {p90(page_times) * 1000:6.1f})"
                  f"   ratio {page_median / api_median:4.2f}", flush=True)
            results.append((label, api_median, page_median))
        return results
    finally:
        runtime.close()


def fill_read_models(runtime: Runtime, groups: int) -> None:
    """``groups`` alert groups and their timelines, written straight into the read models."""
    now = datetime.now(timezone.utc)
    chance = random.Random(42)
    integrations = [f"CBENCH{index}" for index in range(5)]
    response_types = {"acknowledged": 0, "silenced": 7, "resolved": 13}
    group_rows, timeline_rows = [], []
    for index in range(groups):
        group_id = f"IBENCH{index:09d}"
        started = now - timedelta(seconds=chance.randint(0, 6 * 86400))
        state = chance.choice(["firing", "acknowledged", "silenced", "resolved", "resolved"])
        group_rows.append((group_id, str(uuid.uuid4()), integrations[index % 5], "RBENCH", "distinction",
                           f"Bench {index}", state, int(state == "resolved"), iso(started), index + 1))
        timeline_rows.append((group_id, index + 1, 0, 21, "Incident registered", None, iso(started), "{}"))
        if state in response_types:
            responded = started + timedelta(seconds=chance.randint(1, 7200))
            timeline_rows.append((group_id, index + 1, 1, response_types[state], state, "bench", iso(responded), "{}"))
    with runtime.db.transaction() as cur:
        cur.executemany(
            "INSERT INTO alert_groups (id, uuid, integration_id, route_id, distinction, title, state, resolved,"
            " started_at, template_revision, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s)",
            group_rows,
        )
        cur.executemany(
            "INSERT INTO timeline (alert_group_id, position, seq, type, action, author, created_at, details)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            timeline_rows,
        )
        cur.execute("ANALYZE")


def run_metrics(settings: Settings, groups: int) -> None:
    migrate(settings)
    runtime = Runtime(settings)
    try:
        started = time.monotonic()
        fill_read_models(runtime, groups)
        print(f"  wrote {groups} alert groups into the read models in {time.monotonic() - started:.1f}s", flush=True)
        scrape = create_app(runtime).test_client()
        first = timed(scrape.get, "/metrics")
        after = [timed(scrape.get, "/metrics") for _ in range(10)]
        print(f"  GET /metrics: first scrape {first * 1000:.0f} ms, then median {statistics.median(after) * 1000:.1f} ms"
              f" (p90 {sorted(after)[8] * 1000:.1f})", flush=True)
    finally:
        runtime.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--metrics-groups", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--database-url", default=os.environ.get("TOCSIN_TEST_DATABASE_URL", DEFAULT_DATABASE_URL))
    args = parser.parse_args()
    worst = 0.0
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    for backend in backends:
        print(f"{backend}: {args.groups} alert groups, {args.rounds} rounds per case", flush=True)
        with fresh_store(backend, args.database_url) as settings:
            for _, api_median, page_median in run(settings, args.groups, args.rounds):
                worst = max(worst, page_median / api_median)
    for backend in backends if args.metrics_groups else ():
        print(f"{backend}: metrics with {args.metrics_groups} alert groups", flush=True)
        with fresh_store(backend, args.database_url) as settings:
            run_metrics(settings, args.metrics_groups)
    verdict = "PASS" if worst <= TARGET_RATIO else "MISS"
    print(f"worst ratio page/API {worst:.2f} (target <= {TARGET_RATIO:g}): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
