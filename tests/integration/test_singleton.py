"""A worker copy that loses its singleton lock (its session terminated, as by a server restart)
stops its work before the standby starts: never two active copies. It then waits as a standby."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from adapters.singleton import SingletonLock, run_as_singleton
from tests.conftest import eventually, require_postgres
from tocsin.cli import migrate


class Copies:
    """Two copies of the ingest worker, each a real runtime, recording when each is active."""

    def __init__(self, settings):
        self.settings = settings
        self.guard = threading.Lock()
        self.active: dict[str, object] = {}
        self.most_active_at_once = 0
        self.log: list[tuple[float, str, str]] = []

    def run(self, copy: str, lock: SingletonLock, stop: threading.Event) -> None:
        from tocsin.runtime import Runtime

        def start():
            runtime = Runtime(self.settings)
            runtime.start(ingest=True, projections=False, ticker=False)
            with self.guard:
                self.active[copy] = runtime
                self.most_active_at_once = max(self.most_active_at_once, len(self.active))
                self.log.append((time.monotonic(), copy, "start"))
            return runtime

        def stop_work(runtime) -> None:
            runtime.close()
            assert not any(thread.is_alive() for thread in runtime._threads), "work still running"
            with self.guard:
                del self.active[copy]
                self.log.append((time.monotonic(), copy, "stop"))

        run_as_singleton(lock, start, stop_work, stop)

    def only_active(self) -> str | None:
        with self.guard:
            return next(iter(self.active)) if len(self.active) == 1 else None


@pytest.fixture
def settings(tmp_path):
    from adapters.settings import Settings
    from tests.conftest import drop_schema

    url = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield Settings(database_url=url, database_schema=schema, data_dir=tmp_path)
    drop_schema(url, schema)


def test_a_copy_that_loses_its_lock_steps_down_before_the_standby_takes_over(settings):
    migrate(settings)
    copies = Copies(settings)
    name = f"{settings.database_schema}-ingest"
    locks = {copy: SingletonLock(settings.postgres_conninfo(), name, poll_seconds=0.2) for copy in ("a", "b")}
    stop = threading.Event()
    threads = [threading.Thread(target=copies.run, args=(copy, locks[copy], stop)) for copy in locks]
    for thread in threads:
        thread.start()
    try:
        first = eventually(copies.only_active, describe="one active copy")
        time.sleep(1.0)
        assert copies.only_active() == first  # the other waits as a standby

        # As a database restart would: the lock's session ends under the active copy.
        with psycopg.connect(require_postgres(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (locks[first].backend_pid,))
        second = eventually(
            lambda: (active := copies.only_active()) != first and active, describe="the standby taking over"
        )

        # And again the other way: the first copy went back to waiting as a standby.
        with psycopg.connect(require_postgres(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (locks[second].backend_pid,))
        eventually(lambda: copies.only_active() == first, describe="the first copy active again")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert copies.most_active_at_once == 1, copies.log
    events = [(copy, what) for _, copy, what in copies.log]
    assert events[:4] == [(first, "start"), (first, "stop"), (second, "start"), (second, "stop")], events
