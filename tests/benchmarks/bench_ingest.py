#!/usr/bin/env python3
"""Ingest benchmark: Alertmanager notifications into a production-mode Tocsin, against a baseline.

Plain script, not a pytest test:

    python tests/benchmarks/bench_ingest.py [--requests 5000] [--new-group-ratio 0.2]
                                            [--database-url postgresql://...]

What it does (see tests/benchmarks/README.md for how to read the output):

1. Builds ``--requests`` Alertmanager notifications from a captured payload: a seeded, shuffled
   mix of new groups (unique ``groupKey`` and ``groupLabels.alertname`` "Bench0042") and
   repeats of earlier groups' bodies (a repeat always comes after its group's first notification).
2. Baseline: ``baseline_app.py`` (Flask; one INSERT + commit of the raw body per request) under
   the same gunicorn settings (gthread, same workers and threads) as Tocsin's web process.
3. Tocsin in production mode on a fresh PostgreSQL schema: ``migrate``, then the ``web``,
   ``ingest`` and ``project`` processes.
4. For each concurrency level: POSTs every body to both (keep-alive ``http.client`` connections,
   one per load thread) after a short warm-up, and measures accepted/s and accept latency.
5. Tocsin only: how long after its first notification's 2xx each new group is visible through
   ``GET /api/v1/alert_groups/`` (a poller thread, every ~20 ms, during and after the load).
6. Prints a table with the ratios against the baseline and the targets' PASS/MISS marks.

The machine may be shared and noisy: read the ratios, which compare runs made minutes apart on
the same machine, rather than the absolute numbers. Everything it starts (processes, schemas) is
removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import itertools
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlparse

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "payloads" / "captured" / "alertmanager" / "am-02-firing-group-3-alerts.json"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"

TARGET_RATIO = 0.5  # Tocsin accepted/s >= 0.5 x baseline, at the highest concurrency
TARGET_ACCEPT_P99_MS = 25.0  # at the highest concurrency
TARGET_VISIBLE_P99_MS = 250.0  # a new group is visible within 250 ms (p99) of its 2xx

# Inbound rate limits (production default 300 per 5 minutes per integration) would refuse most
# of the load with 429; they are raised out of the way unless --keep-rate-limits is given (the
# limiter still runs, so its cost is measured).
NO_RATE_LIMIT = "1000000000/1d"

STARTUP_TIMEOUT = 60.0
JSON_HEADERS = {"Content-Type": "application/json"}

clock = time.perf_counter  # one monotonic clock for the load threads and the poller


# --- the workload ----------------------------------------------------------------------------


@dataclass
class Workload:
    bodies: list[bytes]  # in sending order
    group_of: list[int]  # group index of each request
    first_request: list[int]  # request index of each group's first notification
    titles: list[str]  # each group's expected title (stripped of surrounding spaces)

    @property
    def groups(self) -> int:
        return len(self.titles)


def _notification(template: dict, name: str) -> bytes:
    payload = copy.deepcopy(template)
    payload["groupKey"] = f'{{}}:{{alertname="{name}"}}'
    payload["groupLabels"] = {"alertname": name}
    payload.setdefault("commonLabels", {})["alertname"] = name
    for alert in payload.get("alerts", []):
        alert.setdefault("labels", {})["alertname"] = name
    return json.dumps(payload, separators=(",", ":")).encode()


def build_workload(template: dict, requests: int, new_ratio: float, seed: int, prefix: str) -> Workload:
    """``requests`` notifications, ``round(requests * new_ratio)`` of them opening a new group.

    Shuffled with ``seed``; the first notification always opens a group, and a repeat picks one
    of the groups already opened earlier in the order, so it always follows its group's first.
    """
    rng = random.Random(seed)
    new_groups = min(requests, max(1, round(requests * new_ratio)))
    opens = [True] * new_groups + [False] * (requests - new_groups)
    rng.shuffle(opens)
    first_open = opens.index(True)
    opens[0], opens[first_open] = opens[first_open], opens[0]
    width = max(4, len(str(new_groups - 1)))
    bodies: list[bytes] = []
    group_of: list[int] = []
    first_request: list[int] = []
    titles: list[str] = []
    group_bodies: list[bytes] = []
    for index, is_new in enumerate(opens):
        if is_new:
            name = f"{prefix}{len(titles):0{width}d}"
            group_bodies.append(_notification(template, name))
            titles.append(name)  # alertname with no other group labels: "<alertname> "
            first_request.append(index)
            group = len(titles) - 1
        else:
            group = rng.randrange(len(titles))
        bodies.append(group_bodies[group])
        group_of.append(group)
    return Workload(bodies, group_of, first_request, titles)


# --- statistics ------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (p100 is the maximum); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000.0:.1f}"


# --- CPU accounting (Linux /proc; empty elsewhere) ----------------------------------------------


def _proc_cpu(labels_by_pgid: dict[int, str]) -> dict[str, float]:
    """CPU seconds so far: of each labelled process group, of all PostgreSQL processes, of this one."""
    out: dict[str, float] = {}
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        entries = os.listdir("/proc")
    except (OSError, ValueError, AttributeError):
        return out
    me = os.getpid()
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        comm = data[data.find("(") + 1:data.rfind(")")]
        fields = data[data.rfind(")") + 2:].split()
        pgid, seconds = int(fields[2]), (int(fields[11]) + int(fields[12])) / ticks
        if int(name) == me:
            label = "bench client (load threads, poller)"
        elif pgid in labels_by_pgid:
            label = labels_by_pgid[pgid]
        elif comm == "postgres" or comm.startswith("postgres:"):
            label = "PostgreSQL (all backends)"
        else:
            continue
        out[label] = out.get(label, 0.0) + seconds
    return out


def _machine_busy() -> float | None:
    """CPU seconds the whole machine spent busy so far (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """CPU used between ``start()`` and ``stop()``, by process group (see ``_proc_cpu``)."""

    def __init__(self, labels_by_pgid: dict[int, str]):
        self.labels_by_pgid = labels_by_pgid
        self.used: dict[str, float] = {}
        self.machine: float | None = None
        self.wall = 0.0

    def start(self) -> CpuMeter:
        self._before, self._busy_before, self._t0 = _proc_cpu(self.labels_by_pgid), _machine_busy(), clock()
        return self

    def stop(self) -> CpuMeter:
        after, busy = _proc_cpu(self.labels_by_pgid), _machine_busy()
        self.wall = clock() - self._t0
        self.used = {k: max(0.0, v - self._before.get(k, 0.0)) for k, v in after.items()}
        if busy is not None and self._busy_before is not None:
            self.machine = busy - self._busy_before
        return self


# --- the load generator ----------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int
    concurrency: int
    wall: float
    ok: int
    latencies: list[float]  # of the 200s, in seconds
    done_at: list[float | None]  # clock() when each 200 was read (None: failed)
    failures: list[tuple[int, object, str]] = field(default_factory=list)  # (index, status, detail)

    @property
    def accepted_per_s(self) -> float:
        return self.ok / self.wall if self.wall > 0 else 0.0

    def p(self, pct: float) -> float | None:
        return percentile(self.latencies, pct)


def _connection(port: int, timeout: float) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


def post_all(port: int, path: str, bodies: list[bytes], concurrency: int, timeout: float = 30.0) -> LoadResult:
    """POST every body, ``concurrency`` threads each with one persistent HTTP/1.1 connection."""
    n = len(bodies)
    statuses: list[object] = [None] * n
    latencies: list[float | None] = [None] * n
    done_at: list[float | None] = [None] * n
    failures: list[tuple[int, object, str]] = []
    failures_lock = threading.Lock()
    next_index = itertools.count().__next__  # atomic under the GIL
    ready = threading.Barrier(concurrency + 1)

    def worker() -> None:
        conn = _connection(port, timeout)
        try:
            conn.connect()  # connection set-up is not part of the measurement
        except OSError:
            pass  # request() reconnects, and reports the error if it persists
        ready.wait()
        while True:
            i = next_index()
            if i >= n:
                break
            started = clock()
            try:
                conn.request("POST", path, bodies[i], JSON_HEADERS)
                response = conn.getresponse()
                data = response.read()
                finished = clock()
                statuses[i] = response.status
                if response.status == 200:
                    latencies[i] = finished - started
                    done_at[i] = finished
                else:
                    with failures_lock:
                        failures.append((i, response.status, data[:300].decode("utf-8", "replace")))
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                with failures_lock:
                    failures.append((i, None, f"{type(exc).__name__}: {exc}"))
                conn.close()
        conn.close()

    threads = [threading.Thread(target=worker, name=f"load-{k}", daemon=True) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = clock()
    for thread in threads:
        thread.join()
    finished = max((t for t in done_at if t is not None), default=clock())
    ok = [x for x in latencies if x is not None]
    failures.sort()
    return LoadResult(n, concurrency, finished - started, len(ok), ok, done_at, failures)


def http_json(port: int, method: str, path: str, body: object = None, headers: dict | None = None,
              timeout: float = 30.0) -> tuple[int, object]:
    conn = _connection(port, timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        all_headers = dict(headers or {})
        if data is not None:
            all_headers.update(JSON_HEADERS)
        conn.request(method, path, data, all_headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode("utf-8", "replace")


# --- the visibility poller -------------------------------------------------------------------


class GroupPoller(threading.Thread):
    """Polls one integration's alert groups and records when each title is first seen."""

    def __init__(self, port: int, token: str, integration_id: str, expected: set[str], interval: float,
                 perpage: int = 100):
        super().__init__(name="visibility-poller", daemon=True)
        self.port = port
        self.token = token
        self.integration_id = integration_id
        self.expected = expected
        self.interval = interval
        self.perpage = perpage
        self.first_seen: dict[str, float] = {}
        self.all_seen = threading.Event()
        self.stop = threading.Event()
        self.polls = 0
        self.errors: list[str] = []
        self.poll_latencies: list[float] = []
        self.bytes = 0

    def _page(self, conn: http.client.HTTPConnection, number: int) -> dict:
        query = urlencode({"integration_id": self.integration_id, "perpage": self.perpage, "page": number})
        conn.request("GET", f"/api/v1/alert_groups/?{query}", headers={"Authorization": self.token})
        response = conn.getresponse()
        raw = response.read()
        self.bytes += len(raw)
        if response.status != 200:
            raise RuntimeError(f"GET alert_groups -> {response.status}: {raw[:200]!r}")
        return json.loads(raw)

    def poll_once(self, conn: http.client.HTTPConnection) -> None:
        """One pass from page 1 (newest first) down through the pages that hold unseen groups.

        Groups become visible in about the order they were opened, so the unseen ones are the
        newest: the pass stops at the first page with nothing new. Walking on to the last page
        instead would, under load, keep this thread on old pages for a second or more while new
        groups pile up on page 1, and charge that delay to the server. Only when even page 1
        has nothing new although groups are missing does the pass look at every page.
        """
        number, everywhere = 1, False
        while True:
            started = clock()
            page = self._page(conn, number)
            seen_at = clock()
            self.poll_latencies.append(seen_at - started)
            fresh = 0
            for group in page["results"]:
                title = (group.get("title") or "").strip()
                if title not in self.first_seen:
                    self.first_seen[title] = seen_at
                    fresh += 1
            if len(self.first_seen) >= page["count"] or not page.get("next"):
                return
            if not fresh and not everywhere:
                if number > 1:
                    return  # past the new ones; the next pass starts on page 1 again
                everywhere = True
            number += 1

    def run(self) -> None:
        conn = _connection(self.port, 10.0)
        while not self.stop.is_set():
            started = clock()
            try:
                self.poll_once(conn)
                self.polls += 1
            except Exception as exc:  # noqa: BLE001  (keep polling; the report shows the errors)
                self.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
            if self.expected <= self.first_seen.keys():
                self.all_seen.set()
            self.stop.wait(max(0.0, self.interval - (clock() - started)))
        conn.close()


# --- processes -------------------------------------------------------------------------------


class Processes:
    """Subprocesses in their own sessions, logged to files; stopped as whole process groups."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict, cwd: Path = REPO_ROOT) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.running[name] = proc
        return proc

    def log(self, name: str) -> str:
        try:
            return (self.log_dir / f"{name}.log").read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def tail(self, name: str, chars: int = 3000) -> str:
        text = self.log(name)
        return text if len(text) <= chars else "..." + text[-chars:]

    def check_alive(self, name: str) -> None:
        proc = self.running[name]
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def stop(self, name: str) -> None:
        proc = self.running.pop(name, None)
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)  # the session leader's pid is its process group id
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=wait)
                # gunicorn's workers may outlive the arbiter by a moment: sweep the group.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return
            except subprocess.TimeoutExpired:
                continue

    def pgids(self, labels: dict[str, str]) -> dict[int, str]:
        """{process group id: label} of the named running processes (for CpuMeter)."""
        return {self.running[name].pid: label for name, label in labels.items() if name in self.running}

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(procs: Processes, name: str, port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        procs.check_alive(name)
        try:
            status, _ = http_json(port, "GET", "/health", timeout=2.0)
            if status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not healthy after {STARTUP_TIMEOUT:.0f}s:\n{procs.tail(name)}")
        time.sleep(0.1)


def wait_for_log(procs: Processes, name: str, text: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while text not in procs.log(name):
        procs.check_alive(name)
        if time.monotonic() > deadline:
            hint = ""
            if "standby" in procs.log(name):
                hint = ("\n(it is waiting as a standby: another worker holds this schema's advisory lock; "
                        "stop it or use another schema)")
            raise RuntimeError(f"{name} did not log {text!r} within {STARTUP_TIMEOUT:.0f}s{hint}:\n"
                               f"{procs.tail(name)}")
        time.sleep(0.1)


def pg_connect(database_url: str):
    import psycopg

    return psycopg.connect(database_url, autocommit=True, connect_timeout=5)


def drop_schema(database_url: str, schema: str) -> None:
    from psycopg import sql

    with pg_connect(database_url) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOCSIN_", "BENCH_"))}
    # `tocsin.cli web` execs `gunicorn` by name: find this interpreter's one first.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def gunicorn_argv(workers: int, threads: int, port: int) -> list[str]:
    # The same server settings as `tocsin.cli web` (no access log, its default).
    return [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", str(workers),
            "--threads", str(threads), "--bind", f"127.0.0.1:{port}"]


# --- the two systems -------------------------------------------------------------------------


def first_accepted(workload: Workload, load: LoadResult) -> list[float | None]:
    """Per group, when the 2xx of its first accepted notification (in sending order) was read.

    That is its first notification unless that one failed; None when none was accepted.
    """
    accepted: list[float | None] = [None] * workload.groups
    for index, group in enumerate(workload.group_of):
        if accepted[group] is None and load.done_at[index] is not None:
            accepted[group] = load.done_at[index]
    return accepted


class Baseline:
    def __init__(self, procs: Processes, args, schemas: list[str]):
        self.procs = procs
        self.args = args
        self.schema = f"bench_base_{uuid.uuid4().hex[:10]}"
        schemas.append(self.schema)
        from psycopg import sql

        with pg_connect(args.database_url) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            conn.execute(sql.SQL(
                "CREATE TABLE {} (id BIGSERIAL PRIMARY KEY, received_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
                "body BYTEA NOT NULL)").format(sql.Identifier(self.schema, "received")))
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        env = child_env({
            "BENCH_CONNINFO": self.args.database_url,
            "BENCH_TABLE": f"{self.schema}.received",
            "BENCH_POOL_SIZE": str(self.args.threads),
        })
        argv = gunicorn_argv(self.args.workers, self.args.threads, self.port) + ["--chdir", str(HERE),
                                                                                 "baseline_app:app"]
        self.procs.start("baseline", argv, env)
        wait_healthy(self.procs, "baseline", self.port)

    def stop(self) -> None:
        # Between runs, so its connections do not count against max_connections during Tocsin's.
        self.procs.stop("baseline")

    def run(self, workload: Workload, warmup: Workload, concurrency: int) -> tuple[LoadResult, CpuMeter]:
        post_all(self.port, "/receive/", warmup.bodies, concurrency)
        cpu = CpuMeter(self.procs.pgids({"baseline": "web (gunicorn)"})).start()
        load = post_all(self.port, "/receive/", workload.bodies, concurrency)
        return load, cpu.stop()


@dataclass
class Visibility:
    groups: int
    delays: list[float]  # first seen - 2xx of the group's first accepted notification, seconds
    missing: int
    no_2xx: int  # groups none of whose notifications was accepted (not measured)
    all_visible_after_last_2xx: float | None
    polls: int
    poll_p50: float | None
    poll_bytes: int
    poll_errors: list[str]

    def p(self, pct: float) -> float | None:
        return percentile(self.delays, pct)


class Tocsin:
    def __init__(self, procs: Processes, args, schemas: list[str]):
        self.procs = procs
        self.args = args
        self.schema = f"tocsin_bench_{uuid.uuid4().hex[:10]}"
        schemas.append(self.schema)
        self.port = free_port()
        self.env = child_env({
            "TOCSIN_DATABASE_URL": args.database_url,
            "TOCSIN_DATABASE_SCHEMA": self.schema,
            "TOCSIN_HOST": "127.0.0.1",
            "TOCSIN_PORT": str(self.port),
            "TOCSIN_BASE_URL": f"http://127.0.0.1:{self.port}",
            "TOCSIN_WEB_WORKERS": str(args.workers),
            "TOCSIN_WEB_THREADS": str(args.threads),
            "TOCSIN_LOG_LEVEL": "INFO",
        })
        if not args.keep_rate_limits:
            self.env.update(TOCSIN_RATELIMIT_INTEGRATION=NO_RATE_LIMIT, TOCSIN_RATELIMIT_TOTAL=NO_RATE_LIMIT)
        self.token = ""

    def _cli(self, *cli_args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "tocsin.cli", *cli_args], cwd=REPO_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"tocsin {' '.join(cli_args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self) -> None:
        self._cli("migrate")  # creates the schema, the event tables and the read models
        self.token = self._cli("token", "create", "--name", "bench", "--role", "admin").strip().splitlines()[-1]
        cli = [sys.executable, "-m", "tocsin.cli"]
        self.procs.start("tocsin-ingest", cli + ["ingest"], self.env)
        self.procs.start("tocsin-project", cli + ["project"], self.env)
        # The processes that react to what ingest records run too, as in production (without
        # escalation chains they read the new groups and decide nothing).
        self.procs.start("tocsin-escalate", cli + ["escalate"], self.env)
        self.procs.start("tocsin-ticker", cli + ["ticker"], self.env)
        self.procs.start("tocsin-web", cli + ["web", "--host", "127.0.0.1", "--port", str(self.port)], self.env)
        wait_for_log(self.procs, "tocsin-ingest", "ingest running")
        wait_for_log(self.procs, "tocsin-project", "projections running")
        wait_for_log(self.procs, "tocsin-escalate", "escalation running")
        wait_healthy(self.procs, "tocsin-web", self.port)

    def create_integration(self, name: str) -> tuple[str, str]:
        status, body = http_json(self.port, "POST", "/api/v1/integrations/", {"type": "alertmanager", "name": name},
                                 headers={"Authorization": self.token})
        if status != 201 or not isinstance(body, dict) or not body.get("link"):
            raise RuntimeError(f"creating integration {name!r}: {status} {body}")
        return body["id"], urlparse(body["link"]).path

    def wait_visible(self, integration_id: str, titles: set[str], timeout: float) -> None:
        poller = GroupPoller(self.port, self.token, integration_id, titles, self.args.poll_interval,
                             self.args.poll_perpage)
        poller.start()
        ok = poller.all_seen.wait(timeout)
        poller.stop.set()
        poller.join()
        if not ok:
            raise RuntimeError(f"warm-up groups not visible after {timeout:.0f}s "
                               f"({len(titles - poller.first_seen.keys())} missing)")

    def run(self, workload: Workload, warmup: Workload, concurrency: int
            ) -> tuple[LoadResult, Visibility, CpuMeter, CpuMeter]:
        # A fresh integration per level (and one for the warm-up): groups never mix.
        warm_id, warm_path = self.create_integration(f"bench-warmup-c{concurrency}")
        bench_id, bench_path = self.create_integration(f"bench-c{concurrency}")
        post_all(self.port, warm_path, warmup.bodies, concurrency)
        self.wait_visible(warm_id, set(warmup.titles), self.args.visibility_timeout)  # drained: start clean

        pgids = self.procs.pgids({"tocsin-web": "web (gunicorn)", "tocsin-ingest": "ingest",
                                  "tocsin-project": "project", "tocsin-escalate": "escalate + ticker",
                                  "tocsin-ticker": "escalate + ticker"})
        poller = GroupPoller(self.port, self.token, bench_id, set(workload.titles), self.args.poll_interval,
                             self.args.poll_perpage)
        poller.start()
        try:
            cpu_load, cpu_all = CpuMeter(pgids).start(), CpuMeter(pgids).start()
            load = post_all(self.port, bench_path, workload.bodies, concurrency)
            cpu_load.stop()
            last_2xx = max((t for t in load.done_at if t is not None), default=clock())
            accepted_at = first_accepted(workload, load)
            # A group none of whose notifications was accepted cannot show up: do not wait for it.
            poller.expected = {workload.titles[g] for g, t in enumerate(accepted_at) if t is not None}
            poller.all_seen.wait(max(0.0, last_2xx + self.args.visibility_timeout - clock()))
            cpu_all.stop()
        finally:
            poller.stop.set()
            poller.join()

        delays, missing, no_2xx = [], 0, 0
        for group, title in enumerate(workload.titles):
            accepted = accepted_at[group]
            seen = poller.first_seen.get(title)
            if accepted is None:
                no_2xx += 1
            elif seen is None:
                missing += 1
            else:
                delays.append(seen - accepted)
        all_after = None
        if missing == 0 and poller.expected:
            all_after = max(poller.first_seen[t] for t in poller.expected) - last_2xx
        visibility = Visibility(workload.groups, delays, missing, no_2xx, all_after, poller.polls,
                                percentile(poller.poll_latencies, 50), poller.bytes, poller.errors[:5])
        return load, visibility, cpu_load, cpu_all


# --- the report ------------------------------------------------------------------------------


def machine_facts(args) -> list[tuple[str, str]]:
    import gunicorn

    with pg_connect(args.database_url) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
        max_conn = conn.execute("SHOW max_connections").fetchone()[0]
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return [
        ("cores", f"{os.cpu_count()} (usable by this process: {affinity})"),
        ("load average", load),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("PostgreSQL", f"{pg_version} (synchronous_commit={sync_commit}, max_connections={max_conn})"),
        ("gunicorn", f"{gunicorn.__version__}, gthread, workers={args.workers}, threads={args.threads} (both servers)"),
        ("load generator", "in-process threads, one keep-alive http.client connection each"),
        ("rate limits", "production defaults (--keep-rate-limits)" if args.keep_rate_limits
         else f"raised to {NO_RATE_LIMIT} (TOCSIN_RATELIMIT_INTEGRATION/_TOTAL)"),
    ]


def print_cpu(results: dict[int, dict]) -> None:
    """CPU milliseconds per accepted request, by process: where the machine's time went."""
    if not any(r["baseline_cpu"].used for r in results.values()):
        return
    print()
    print("CPU per accepted request (ms of CPU / 2xx), by process; machine = all cores busy, any process")
    columns = []
    for concurrency, r in results.items():
        columns.append((f"c={concurrency} base", r["baseline_cpu"], r["baseline"].ok))
        columns.append((f"c={concurrency} tocsin", r["tocsin_cpu_load"], r["tocsin"].ok))
        columns.append(("+drain", r["tocsin_cpu_all"], r["tocsin"].ok))
    labels = ["web (gunicorn)", "ingest", "project", "escalate + ticker", "PostgreSQL (all backends)",
              "bench client (load threads, poller)"]
    print(f"  {'':<37}" + "".join(f"{title:>14}" for title, _, _ in columns))
    for label in labels:
        cells = [f"{1000 * cpu.used[label] / ok:>14.2f}" if ok and label in cpu.used else f"{'-':>14}"
                 for _, cpu, ok in columns]
        print(f"  {label:<37}" + "".join(cells))
    cells = [f"{1000 * cpu.machine / ok:>14.2f}" if ok and cpu.machine is not None else f"{'-':>14}"
             for _, cpu, ok in columns]
    print(f"  {'machine (all processes)':<37}" + "".join(cells))
    cells = [f"{cpu.wall:>13.1f}s" for _, cpu, _ in columns]
    print(f"  {'window (wall)':<37}" + "".join(cells))
    print("  base and tocsin: during the timed load; +drain: tocsin from load start until every group was")
    print("  visible (ingest and projections catching up). The bench client's poller runs in Tocsin's columns only.")


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_heading(title: str, width: int, facts: list[tuple[str, str]]) -> None:
    print()
    print("=" * width)
    print(title)
    print("=" * width)
    for key, value in facts:
        print(f"  {key:<15} {value}")
    print()


def print_targets(checks: list[tuple[str, str, bool]], width: int) -> bool:
    """Each target's PASS or MISS, with what was measured; whether all passed."""
    print()
    print("Targets")
    for text, shown, ok in checks:
        print(f"  [{mark(ok)}] {text:<{width}} {shown}")
    print()
    return all(ok for _, _, ok in checks)


def print_report(args, facts, workload: Workload, results: dict[int, dict]) -> bool:
    described = (f"{len(workload.bodies)} Alertmanager notifications (am-02, 3 alerts each), "
                 f"{workload.groups} new groups ({args.new_group_ratio:.0%}), seed {args.seed}, "
                 f"warm-up {args.warmup} requests")
    print_heading("Tocsin ingest benchmark", 100, [*facts, ("workload", described)])
    header = (f"{'conc':>4} | {'baseline acc/s':>14} {'tocsin acc/s':>12} {'ratio':>6} | "
              f"{'base p50':>8} {'base p99':>8} {'toc p50':>8} {'toc p99':>8} | "
              f"{'vis p50':>8} {'vis p99':>8} {'vis max':>8} {'all vis':>8} {'missing':>7}")
    print(header)
    print(f"{'':>4} | {'':>14} {'':>12} {'':>6} | {'ms':>8} {'ms':>8} {'ms':>8} {'ms':>8} | "
          f"{'ms':>8} {'ms':>8} {'ms':>8} {'ms':>8} {'':>7}")
    print("-" * len(header))
    for concurrency, r in results.items():
        base, toc, vis = r["baseline"], r["tocsin"], r["visibility"]
        ratio = toc.accepted_per_s / base.accepted_per_s if base.accepted_per_s else 0.0
        r["ratio"] = ratio
        print(f"{concurrency:>4} | {base.accepted_per_s:>14.0f} {toc.accepted_per_s:>12.0f} {ratio:>6.2f} | "
              f"{ms(base.p(50)):>8} {ms(base.p(99)):>8} {ms(toc.p(50)):>8} {ms(toc.p(99)):>8} | "
              f"{ms(vis.p(50)):>8} {ms(vis.p(99)):>8} {ms(vis.p(100)):>8} "
              f"{ms(vis.all_visible_after_last_2xx):>8} {vis.missing:>7}")
    print()
    print("  acc/s: 2xx responses / wall time.  p50/p99: accept latency (request sent -> response read).")
    print("  vis: first seen in GET /api/v1/alert_groups/ minus the 2xx of the group's first (accepted) notification;")
    print("  all vis: last group first seen minus the last 2xx of the run; missing: groups never seen.")
    for concurrency, r in results.items():
        base, toc, vis = r["baseline"], r["tocsin"], r["visibility"]
        print(f"  c={concurrency}: baseline wall {base.wall:.2f}s, tocsin wall {toc.wall:.2f}s; "
              f"poller {vis.polls} polls (p50 {ms(vis.poll_p50)} ms, "
              f"{vis.poll_bytes / max(1, vis.polls) / 1024:.0f} KiB each)"
              + (f"; {vis.no_2xx} groups not measured (no notification accepted)" if vis.no_2xx else ""))
        for name, res in (("baseline", base), ("tocsin", toc)):
            if res.failures:
                print(f"  c={concurrency} {name}: {len(res.failures)} of {res.requests} requests were not 200:")
                kinds: dict[tuple, list[int]] = {}
                for index, status, detail in res.failures:
                    kinds.setdefault((status, detail[:150]), []).append(index)
                for (status, detail), indexes in sorted(kinds.items(), key=lambda kv: -len(kv[1]))[:8]:
                    print(f"      {len(indexes)} x {status} {detail!r} (first: request #{indexes[0]})")
                if len(kinds) > 8:
                    print(f"      ... and {len(kinds) - 8} other kinds")
        if vis.poll_errors:
            print(f"  c={concurrency} poller errors (first {len(vis.poll_errors)}): {vis.poll_errors}")

    print_cpu(results)

    top = max(results)
    checks = []
    r = results[top]
    checks.append((f"accepted/s at concurrency {top} >= {TARGET_RATIO}x baseline",
                   f"{r['ratio']:.2f}x", r["ratio"] >= TARGET_RATIO))
    p99, base_p99 = r["tocsin"].p(99), r["baseline"].p(99)
    # The target is absolute; the baseline's own p99 in the same run says what this machine allows.
    shown = f"{ms(p99)} ms (baseline {ms(base_p99)} ms"
    shown += f", {p99 / base_p99:.2f}x)" if p99 and base_p99 else ")"
    checks.append((f"accept p99 < {TARGET_ACCEPT_P99_MS:.0f} ms at concurrency {top}",
                   shown, p99 is not None and p99 * 1000 < TARGET_ACCEPT_P99_MS))
    for concurrency, r in results.items():
        vis = r["visibility"]
        v99 = vis.p(99)
        ok = vis.missing == 0 and vis.no_2xx == 0 and v99 is not None and v99 * 1000 < TARGET_VISIBLE_P99_MS
        shown = f"{ms(v99)} ms" + (f", {vis.missing} never seen" if vis.missing else "")
        checks.append((f"group visible within {TARGET_VISIBLE_P99_MS:.0f} ms p99 of its 2xx (c={concurrency})",
                       shown, ok))
    failures = sum(len(r["baseline"].failures) + len(r["tocsin"].failures) for r in results.values())
    checks.append(("every response is 200", f"{failures} failures", failures == 0))
    return print_targets(checks, 62)


# --- main ------------------------------------------------------------------------------------


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default=os.environ.get("TOCSIN_TEST_DATABASE_URL", DEFAULT_DATABASE_URL),
                        help="PostgreSQL URL (default $TOCSIN_TEST_DATABASE_URL or %(default)s)")


def add_keep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs (path printed)")
    parser.add_argument("--keep-rate-limits", action="store_true",
                        help="keep Tocsin's default inbound rate limits (most of the load then gets 429)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="timed notifications per run (default 5000)")
    parser.add_argument("--new-group-ratio", type=float, default=0.2,
                        help="share of notifications that open a new group (default 0.2)")
    add_database_argument(parser)
    parser.add_argument("--concurrency", default="1,16", help="comma-separated load threads (default 1,16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, both servers (default 2)")
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker (default 16)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests before each run (default 100)")
    parser.add_argument("--seed", type=int, default=42)
    # A light poller: each GET costs the server CPU the load also needs; 25 per page is more than
    # the groups opened between two polls, and a poll pages on while pages show unseen groups.
    parser.add_argument("--poll-interval", type=float, default=0.020, help="visibility poll period, s (0.020)")
    parser.add_argument("--poll-perpage", type=int, default=25,
                        help="page size of the visibility poller's GET (default 25)")
    parser.add_argument("--visibility-timeout", type=float, default=60.0,
                        help="seconds after the last 2xx to wait for every group (default 60)")
    add_keep_arguments(parser)
    args = parser.parse_args(argv)
    args.concurrency_levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.concurrency_levels or min(args.concurrency_levels) < 1 or args.requests < 1:
        parser.error("need at least one request and concurrency levels >= 1")
    return args


def _terminate(signum, frame):  # run the finally blocks on SIGTERM too
    raise SystemExit(128 + signum)


@contextmanager
def benchmark_run(args, log_prefix: str) -> Iterator[tuple[Processes, list[str]]]:
    """The processes a benchmark starts (logged to a fresh folder) and the schemas it makes. At the
    end, also on failure, Ctrl-C or SIGTERM, the processes are stopped and the schemas dropped;
    the logs are removed unless the run failed or ``--keep-logs`` was given."""
    signal.signal(signal.SIGTERM, _terminate)
    log_dir = Path(tempfile.mkdtemp(prefix=log_prefix))
    procs = Processes(log_dir)
    schemas: list[str] = []
    keep_logs = args.keep_logs
    try:
        yield procs, schemas
    except BaseException:
        keep_logs = True
        raise
    finally:
        procs.stop_all()
        for schema in schemas:
            try:
                drop_schema(args.database_url, schema)
            except Exception as exc:  # noqa: BLE001  (report, but go on cleaning up)
                print(f"could not drop schema {schema}: {exc}", file=sys.stderr)
        if keep_logs:
            print(f"server logs kept in {log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    template = json.loads(FIXTURE.read_text("utf-8"))
    workload = build_workload(template, args.requests, args.new_group_ratio, args.seed, "Bench")
    warmup = build_workload(template, args.warmup, args.new_group_ratio, args.seed + 1, "Warm")

    with benchmark_run(args, "tocsin-bench-") as (procs, schemas):
        facts = machine_facts(args)
        print(f"building: {len(workload.bodies)} requests, {workload.groups} groups; logs in {procs.log_dir}",
              flush=True)
        tocsin = Tocsin(procs, args, schemas)
        baseline = Baseline(procs, args, schemas)
        print(f"starting Tocsin (schema {tocsin.schema}) ...", flush=True)
        tocsin.start()
        results: dict[int, dict] = {}
        for concurrency in args.concurrency_levels:
            print(f"c={concurrency}: baseline ...", flush=True)
            baseline.start()
            try:
                base, base_cpu = baseline.run(workload, warmup, concurrency)
            finally:
                baseline.stop()
            print(f"c={concurrency}: baseline {base.accepted_per_s:.0f}/s; tocsin ...", flush=True)
            toc, vis, toc_cpu_load, toc_cpu_all = tocsin.run(workload, warmup, concurrency)
            for name in ("tocsin-web", "tocsin-ingest", "tocsin-project"):
                procs.check_alive(name)
            print(f"c={concurrency}: tocsin {toc.accepted_per_s:.0f}/s, visibility p99 {ms(vis.p(99))} ms", flush=True)
            results[concurrency] = {"baseline": base, "tocsin": toc, "visibility": vis, "baseline_cpu": base_cpu,
                                    "tocsin_cpu_load": toc_cpu_load, "tocsin_cpu_all": toc_cpu_all}
        facts.append(("load avg (end)", ", ".join(f"{x:.2f}" for x in os.getloadavg())))
        all_pass = print_report(args, facts, workload, results)
        return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
