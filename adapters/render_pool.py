"""Template renders in worker processes with a hard time and memory limit.

The render budget in ``domain.templating`` stops a template between operations; it cannot stop one
built-in that runs for minutes (``sort`` of a 10-million-item list) or fills memory within its
second. So ingest and the template preview render here: in worker processes that run under an
address-space limit (``RLIMIT_AS``) and are killed and replaced when one render takes longer than
``hard_limit`` seconds of wall-clock time.

One ``run`` sends many jobs (a batch's entries) to a worker in one message and gets their results
back in one message (or a few, when the work takes long), so the hot path pays no round trip per
render. The worker records in shared memory which job it is on and when its current render
started; the parent waits for the answer and, when a render overruns, kills the worker, reports
that job as stopped and sends the jobs without a result to a fresh worker. A job that runs out of
memory is reported as stopped too, and its worker is replaced. The caller may give a stopped job a
cheaper replacement, and the jobs not sent yet are read again after a stop, so a caller can stop
rendering for whoever caused it (ingest's cool-down per integration).

Workers are started lazily with the ``forkserver`` method (safe from a threaded parent: no fork of
a process holding other threads' locks), from a server that has the domain modules preloaded.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from domain import templating

log = logging.getLogger(__name__)

# Renders stop themselves after RENDER_TIME_LIMIT; the hard limit only has to catch what cannot.
HARD_LIMIT_GRACE = 0.25  # seconds
DEFAULT_HARD_LIMIT = templating.RENDER_TIME_LIMIT + HARD_LIMIT_GRACE
# Bytes of address space per worker: an idle worker maps about 40 MiB, a batch's payloads (at
# most MAX_MESSAGE_BYTES of JSON per message) take a few dozen more.
DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024
# A job bigger than this goes alone; smaller ones share a message up to this size.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# A worker sends what it has finished at least this often, so a kill loses little work.
FLUSH_INTERVAL = 0.05  # seconds
STARTUP_ALLOWANCE = 30.0  # seconds a worker may take to read a message before its first job
POLL_SLICE = 0.05  # seconds between looks at a busy worker's clock

_PRELOAD = ["adapters.render_pool", "domain.ingest", "domain.integrations"]
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(_PRELOAD)

# Shared progress slots: which job of the current request runs, and when its current render (or
# the job itself) started, as time.monotonic() (one clock for every process on the machine).
_JOB, _STARTED = 0, 1


@dataclass(frozen=True)
class Done:
    value: Any


@dataclass(frozen=True)
class Stopped:
    """The job did not finish: ``reason`` is "time", "memory" or "crashed" (all hard limits)."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """The job raised: ``error`` names the exception (a defect; the worker goes on)."""

    error: str


Outcome = Done | Stopped | Failed


class RenderPoolError(RuntimeError):
    """A worker could not be started or talked to (not a job's fault)."""


# --- the worker process -------------------------------------------------------------------------


class _ProgressWatch(templating.RenderWatch):
    def __init__(self, progress) -> None:
        self.progress = progress
        self.out_of_memory_seen = False

    def render_started(self) -> None:
        self.progress[_STARTED] = time.monotonic()

    def out_of_memory(self) -> None:
        self.out_of_memory_seen = True


def _limit_memory(limit: int | None) -> None:
    if limit is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _serve(conn: Connection, progress, memory_limit: int | None) -> None:
    """The worker: run requests until the parent goes away or a job ran out of memory."""
    _limit_memory(memory_limit)
    watch = _ProgressWatch(progress)
    templating.watch_renders(watch)
    while True:
        try:
            function, jobs, max_weight = conn.recv()
        except (EOFError, OSError):
            return
        finished: list[tuple[int, Any]] = []
        weight = 0
        last_flush = time.monotonic()
        for index, job in enumerate(jobs):
            progress[_STARTED] = time.monotonic()
            progress[_JOB] = index  # after the time: a reader never pairs a new job with an old time
            try:
                value = function(*job)
            except MemoryError:
                watch.out_of_memory_seen = True
                value = None
            except Exception as exc:
                value = Failed(f"{type(exc).__name__}: {exc}")
            if watch.out_of_memory_seen:
                # The heap may be fragmented or half full: report, and let a fresh worker go on.
                conn.send(("memory", finished, index))
                return
            finished.append((index, value))
            if max_weight is not None:
                weight += 1 if isinstance(value, Failed) else len(value)
                if weight >= max_weight:
                    break
            now = time.monotonic()
            if now - last_flush >= FLUSH_INTERVAL and index < len(jobs) - 1:
                conn.send(("partial", finished, None))
                finished = []
                last_flush = now
        conn.send(("done", finished, None))


# --- the parent's side ----------------------------------------------------------------------------


class _Worker:
    def __init__(self, memory_limit: int | None) -> None:
        self.progress = _context.RawArray("d", 2)
        self.conn, child_conn = _context.Pipe()
        self.process = _context.Process(
            target=_serve, args=(child_conn, self.progress, memory_limit), name="tocsin-render", daemon=True
        )
        self.process.start()
        child_conn.close()

    def send(self, message: Any) -> None:
        # Until the worker starts the first job (a new worker may still be importing what the
        # message names), the clock allows STARTUP_ALLOWANCE more.
        self.progress[_JOB] = 0
        self.progress[_STARTED] = time.monotonic() + STARTUP_ALLOWANCE
        self.conn.send(message)

    def running(self) -> tuple[int, float]:
        while True:
            job, started = self.progress[_JOB], self.progress[_STARTED]
            if self.progress[_JOB] == job:
                return int(job), started

    def cpu_seconds(self) -> float:
        try:
            with open(f"/proc/{self.process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def kill(self) -> None:
        try:
            self.process.kill()
            self.process.join(timeout=5)
        except (OSError, ValueError, AssertionError):
            pass
        self.conn.close()


def _kill_all(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.kill()
    workers.clear()


class RenderPool:
    """Runs jobs (``function(*job)``, module-level functions and picklable jobs) in worker processes.

    At most ``max_workers`` run at once, one per concurrent ``run``; each is started on first need
    and kept for the next run. ``close()`` stops them (also done when the pool is collected).
    """

    def __init__(
        self,
        max_workers: int = 1,
        hard_limit: float = DEFAULT_HARD_LIMIT,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.max_workers = max_workers
        self.hard_limit = hard_limit
        self.memory_limit = memory_limit
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._slots = threading.BoundedSemaphore(max_workers)
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._all)
        self.stopped_jobs = 0  # jobs stopped by a hard limit since the pool was made
        self._retired_cpu = 0.0

    def run(
        self,
        function: Callable[..., Any],
        jobs: Sequence[tuple],
        *,
        max_weight: int | None = None,
        job_size: Callable[[tuple], int] | None = None,
        replace_stopped: Callable[[int, str], tuple | None] | None = None,
    ) -> list[Outcome]:
        """One outcome per job, in order.

        ``jobs[i]`` is read when the job is sent, so a lazy sequence can change the jobs it has not
        sent yet (after a stop, say). When job ``i`` is stopped by a hard limit,
        ``replace_stopped(i, reason)`` may give a job to run in its place (once); otherwise its
        outcome is Stopped. With ``max_weight`` the run ends once the results' ``len()`` add up to
        it (a stopped job counts 1): the outcomes are then a prefix of the jobs, at least one long.
        ``job_size`` (bytes, roughly) keeps each message to a worker near MAX_MESSAGE_BYTES.
        """
        if not jobs:
            return []
        outcomes: dict[int, Outcome] = {}
        replacements: dict[int, tuple] = {}
        weight = 0
        worker = self._acquire()
        try:
            pending = list(range(len(jobs)))
            while pending:
                chunk = self._chunk(pending, jobs, replacements, job_size)
                remaining = None if max_weight is None else max_weight - weight
                sent = [replacements.get(i) or jobs[i] for i in chunk]
                worker, results, stop = self._run_chunk(worker, function, sent, remaining)
                for position, value in results:
                    failed = isinstance(value, Failed)
                    outcomes[chunk[position]] = value if failed else Done(value)
                    weight += (1 if failed else len(value)) if max_weight is not None else 0
                if stop is not None:
                    index, reason = chunk[stop[0]], stop[1]
                    self.stopped_jobs += 1
                    replacement = None
                    if replace_stopped is not None and index not in replacements:
                        replacement = replace_stopped(index, reason)
                    if replacement is None:
                        outcomes[index] = Stopped(reason)
                        weight += 1
                    else:
                        replacements[index] = replacement
                elif len(results) < len(chunk):
                    break  # the worker reached max_weight
                if max_weight is not None and weight >= max_weight:
                    break
                pending = [i for i in range(len(jobs)) if i not in outcomes]
        finally:
            self._release(worker)
        done = []
        for index in range(len(jobs)):  # a prefix: up to the first job without an outcome
            if index not in outcomes:
                break
            done.append(outcomes[index])
        return done

    def run_one(self, function: Callable[..., Any], *job: Any) -> Outcome:
        return self.run(function, [job])[0]

    def workers_cpu_seconds(self) -> float:
        """CPU time used by this pool's workers (live ones and those already replaced)."""
        with self._lock:
            return self._retired_cpu + sum(worker.cpu_seconds() for worker in self._all)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._idle.clear()
            _kill_all(self._all)

    # --- internals -------------------------------------------------------------------------

    @staticmethod
    def _chunk(
        pending: list[int], jobs: Sequence[tuple], replacements: dict[int, tuple], job_size: Callable[[tuple], int] | None
    ) -> list[int]:
        if job_size is None:
            return pending
        chunk, size = [], 0
        for index in pending:
            job_bytes = job_size(replacements.get(index) or jobs[index])
            if chunk and size + job_bytes > MAX_MESSAGE_BYTES:
                break
            chunk.append(index)
            size += job_bytes
        return chunk

    def _run_chunk(
        self, worker: _Worker | None, function: Callable[..., Any], jobs: list[tuple], max_weight: int | None
    ) -> tuple[_Worker | None, list[tuple[int, Any]], tuple[int, str] | None]:
        """Results (position, value) of one message's jobs, and where and why it stopped, if it did.

        Unfinished jobs before a stop are sent again to a fresh worker here, so the only job
        without a result afterwards is the stopped one (and, with max_weight, those after it).
        """
        results: list[tuple[int, Any]] = []
        positions = list(range(len(jobs)))
        while True:
            if worker is None:
                worker = self._start_worker()
            try:
                worker.send((function, [jobs[p] for p in positions], max_weight))
            except (OSError, ValueError):
                # The idle worker died meanwhile (killed from outside): a fresh one takes the jobs.
                self._retire(worker)
                worker = None
                continue
            received, stop = self._collect(worker)
            results.extend((positions[p], value) for p, value in received)
            if stop is None:
                return worker, results, None
            reason, stuck = stop
            self._retire(worker)
            worker = None
            if stuck is None or stuck >= len(positions):
                raise RenderPoolError("a render worker stopped without saying where")
            stopped = positions[stuck]
            log.warning("a render job was stopped (%s limit); starting a new render worker", reason)
            done = {position for position, _ in results}
            redo = [p for p in positions if p not in done and p < stopped]
            if not redo:
                return worker, results, (stopped, reason)
            # Finished but unreported jobs before the stopped one: run them again, then report.
            worker, again, again_stop = self._run_chunk(None, function, [jobs[p] for p in redo], None)
            results.extend((redo[p], value) for p, value in again)
            if again_stop is not None:  # cannot happen twice for the same jobs unless flaky
                return worker, results, (redo[again_stop[0]], again_stop[1])
            return worker, results, (stopped, reason)

    def _collect(self, worker: _Worker) -> tuple[list[tuple[int, Any]], tuple[str, int | None] | None]:
        received: list[tuple[int, Any]] = []
        while True:
            job, started = worker.running()
            # In slices: the worker moves the clock on at each job and render.
            wait = min(started + self.hard_limit - time.monotonic(), POLL_SLICE)
            try:
                ready = wait > 0 and worker.conn.poll(wait)
            except (OSError, EOFError):
                ready = True
            if not ready:
                job, started = worker.running()
                if time.monotonic() - started >= self.hard_limit:
                    worker.kill()
                    return received, ("time", job)
                continue
            try:
                kind, results, stuck = worker.conn.recv()
            except (EOFError, OSError):
                job, _ = worker.running()
                return received, ("crashed", job)
            received.extend(results)
            if kind == "done":
                return received, None
            if kind == "memory":
                return received, ("memory", stuck)

    def _start_worker(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RenderPoolError("the render pool is closed")
            try:
                worker = _Worker(self.memory_limit)
            except Exception as exc:
                raise RenderPoolError(f"could not start a render worker: {exc}") from exc
            self._all.append(worker)
            return worker

    def _retire(self, worker: _Worker) -> None:
        cpu = worker.cpu_seconds()
        worker.kill()
        with self._lock:
            self._retired_cpu += cpu
            if worker in self._all:
                self._all.remove(worker)

    def _acquire(self) -> _Worker | None:
        self._slots.acquire()
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _release(self, worker: _Worker | None) -> None:
        with self._lock:
            if worker is not None and not self._closed:
                self._idle.append(worker)
        self._slots.release()
