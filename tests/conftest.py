"""Shared fixtures: a Tocsin runtime on SQLite or on PostgreSQL, an API client, servers.

Tests that need PostgreSQL or Redis use TOCSIN_TEST_DATABASE_URL / TOCSIN_TEST_REDIS_URL
(defaulting to the local servers). An unreachable server skips those tests with the reason,
except under CI=true, where it fails them.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapters.settings import Settings

PAYLOADS = Path(__file__).parent / "fixtures" / "payloads"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: a missing server must not pass CI silently."""
    if in_ci():
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


def database_url() -> str:
    return os.environ.get("TOCSIN_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)


def redis_url() -> str:
    return os.environ.get("TOCSIN_TEST_REDIS_URL", DEFAULT_REDIS_URL)


_reachable: dict[str, str | None] = {}


def require_postgres() -> str:
    url = database_url()
    if "postgres" not in _reachable:
        import psycopg

        try:
            psycopg.connect(url, connect_timeout=3).close()
            _reachable["postgres"] = None
        except Exception as exc:
            _reachable["postgres"] = f"PostgreSQL at {url} is unreachable: {exc}"
    if _reachable["postgres"]:
        unavailable(_reachable["postgres"])
    return url


def require_redis() -> str:
    url = redis_url()
    if "redis" not in _reachable:
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=3).ping()
            _reachable["redis"] = None
        except Exception as exc:
            _reachable["redis"] = f"Redis at {url} is unreachable: {exc}"
    if _reachable["redis"]:
        unavailable(_reachable["redis"])
    return url


def drop_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings(backend: str, tmp_path: Path) -> Iterator[Settings]:
    if backend == "sqlite":
        yield Settings(data_dir=tmp_path / "var", base_url="http://tocsin.test")
        return
    url = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield Settings(database_url=url, database_schema=schema, base_url="http://tocsin.test", data_dir=tmp_path)
    drop_schema(url, schema)


@pytest.fixture
def runtime(settings: Settings):
    """A migrated runtime with ingest, projections and ticker running in threads."""
    from tocsin.cli import migrate
    from tocsin.runtime import Runtime

    migrate(settings)
    rt = Runtime(settings)
    rt.start()
    yield rt
    rt.close()


@pytest.fixture
def app(runtime):
    from web import create_app

    flask_app = create_app(runtime)
    flask_app.config["TESTING"] = True
    return flask_app


@pytest.fixture
def admin_token(runtime) -> str:
    from tocsin.cli import create_token

    return create_token(runtime, "admin", "admin")


@pytest.fixture
def client(app, admin_token):
    """A test client that sends the admin token on every request."""
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = admin_token
    return test_client


def eventually(check: Callable[[], object], timeout: float = 10.0, describe: str = "condition"):
    """Poll until ``check`` returns something truthy; fail with ``describe`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout}s waiting for {describe}; last value: {last!r}")


def load_payload(relative: str) -> bytes:
    return (PAYLOADS / relative).read_bytes()
