"""Fixtures for end-to-end tests: a real Tocsin server and a real Prometheus Alertmanager.

Both run as subprocesses on free loopback ports, with their output captured to files in the
test's tmp dir; when a test fails, the tails of those files are attached to its report.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unavailable as skip_or_fail

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
ALERTMANAGER_BINARY = "prometheus-alertmanager"
STARTUP_TIMEOUT = 30.0
LOG_TAIL_CHARS = 6000

# The environment variable http_proxy must not divert requests meant for 127.0.0.1.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- helpers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, Any]:
    """(status, decoded JSON or text); HTTP errors are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def wait_until(predicate: Callable[[], Any], timeout: float, describe: Callable[[], str],
               interval: float = 0.25) -> Any:
    """Poll `predicate` until it returns something truthy, and return that.

    On timeout fail with `describe()`, which should say what was expected and show the last
    thing seen (e.g. the last API response).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g}s: {describe()}", pytrace=False)
        time.sleep(interval)


def tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text("utf-8", "replace")
    except FileNotFoundError:
        return "(no such file)"
    return text if len(text) <= chars else "...\n" + text[-chars:]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """`wait_until` for test modules, which cannot import from a conftest reliably."""
    return wait_until


def register_log(request: pytest.FixtureRequest, name: str, path: Path) -> None:
    request.node.stash.setdefault(_LOGS, {})[name] = path


_LOGS = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for name, path in item.stash.get(_LOGS, {}).items():
            report.sections.append((f"{name} ({path.name}, tail)", tail(path)))
    return report


# --- Tocsin ----------------------------------------------------------------------------------


@dataclass
class Tocsin:
    base_url: str
    token: str
    stderr_path: Path

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http(method, self.base_url + path, body, headers={"Authorization": self.token})


def run_cli(args: list[str], env: dict[str, str], log_dir: Path) -> str:
    """Run a short `tocsin.cli` command; fail with its output if it does not succeed."""
    try:
        done = subprocess.run([sys.executable, "-m", "tocsin.cli", *args], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"`tocsin {' '.join(args)}` did not finish in 60s: {error.stderr}", pytrace=False)
    (log_dir / f"cli-{args[0]}.log").write_text(f"$ tocsin {' '.join(args)}\n--- stdout\n{done.stdout}\n"
                                               f"--- stderr\n{done.stderr}")
    if done.returncode != 0:
        pytest.fail(f"`tocsin {' '.join(args)}` exited {done.returncode}\n"
                    f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}", pytrace=False)
    return done.stdout


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def tocsin_env(backend: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment for every `tocsin.cli` process of this test (its own data dir/schema)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOCSIN_")}
    env["TOCSIN_DATA_DIR"] = str(tmp_path / "tocsin-data")
    if backend == "sqlite":
        yield env
        return

    import psycopg

    database_url = os.environ.get("TOCSIN_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    try:
        psycopg.connect(database_url, connect_timeout=3, autocommit=True).close()
    except psycopg.Error as error:
        skip_or_fail(f"PostgreSQL is unreachable at {database_url}: {error}")
    schema = f"e2e_{uuid.uuid4().hex[:12]}"
    env.update(TOCSIN_DATABASE_URL=database_url, TOCSIN_DATABASE_SCHEMA=schema)
    try:
        yield env
    finally:
        with psycopg.connect(database_url, connect_timeout=3, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def tocsin(tocsin_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Tocsin]:
    """A running `tocsin serve`, ready (GET /health is 200), with an admin API token."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    stderr_path = log_dir / "tocsin-serve.stderr"
    register_log(request, "tocsin serve stderr", stderr_path)

    # `serve` migrates by itself, but the token must be created before it starts.
    run_cli(["migrate"], tocsin_env, log_dir)
    token_output = run_cli(["token", "create", "--name", "e2e", "--role", "admin"], tocsin_env, log_dir)
    lines = token_output.strip().splitlines()
    assert lines, f"`tocsin token create` printed no token (stdout: {token_output!r})"
    token = lines[-1].strip()

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with open(log_dir / "tocsin-serve.stdout", "wb") as stdout, open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tocsin.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT, env=tocsin_env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
        )
    try:
        last: list[Any] = ["no response yet"]

        def healthy() -> bool:
            if process.poll() is not None:
                pytest.fail(f"`tocsin serve` exited with {process.returncode} before becoming healthy",
                            pytrace=False)
            try:
                status, body = http("GET", base_url + "/health", timeout=2)
            except OSError as error:
                last[0] = repr(error)
                return False
            last[0] = f"{status} {body!r}"
            return status == 200

        wait_until(healthy, STARTUP_TIMEOUT, lambda: f"GET {base_url}/health never answered 200; last: {last[0]}")
        yield Tocsin(base_url=base_url, token=token, stderr_path=stderr_path)
    finally:
        stop(process)


# --- Alertmanager ----------------------------------------------------------------------------


@dataclass
class Alertmanager:
    base_url: str
    log_path: Path

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        status, body = http("POST", self.base_url + "/api/v2/alerts", alerts)
        assert status == 200, f"Alertmanager rejected POST /api/v2/alerts: {status} {body!r}"


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """One route to one webhook receiver, with timings short enough for a test."""
    return {
        "route": {
            "receiver": "tocsin",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "2s",
            "repeat_interval": "4s",
        },
        "receivers": [
            {"name": "tocsin", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]},
        ],
    }


@pytest.fixture
def alertmanager_binary() -> str:
    path = shutil.which(ALERTMANAGER_BINARY)
    if path is None:
        skip_or_fail(f"`{ALERTMANAGER_BINARY}` is not installed "
                     "(apt-get install -y prometheus-alertmanager)")
    return path


@pytest.fixture
def start_alertmanager(alertmanager_binary: str, tmp_path_factory: pytest.TempPathFactory,
                       request: pytest.FixtureRequest) -> Iterator[Callable[[str], Alertmanager]]:
    """Start Alertmanager with a webhook receiver posting to the given URL; wait for /-/ready."""
    processes: list[subprocess.Popen] = []

    def start(webhook_url: str) -> Alertmanager:
        workdir = tmp_path_factory.mktemp("alertmanager")
        config_path = workdir / "alertmanager.yml"
        # JSON is valid YAML, and json.dumps quotes the URL correctly.
        config_path.write_text(json.dumps(alertmanager_config(webhook_url), indent=2))
        log_path = workdir / "alertmanager.log"
        register_log(request, "alertmanager log", log_path)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [alertmanager_binary, f"--config.file={config_path}",
                 f"--storage.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}",
                 f"--web.external-url={base_url}",  # else the machine's host name is in payloads
                 "--cluster.listen-address=",  # empty: no gossip, no peers to wait for
                 "--log.level=debug"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        processes.append(process)

        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"Alertmanager exited with {process.returncode} before becoming ready",
                            pytrace=False)
            try:
                return http("GET", base_url + "/-/ready", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(ready, STARTUP_TIMEOUT, lambda: f"Alertmanager at {base_url} never became ready")
        return Alertmanager(base_url=base_url, log_path=log_path)

    try:
        yield start
    finally:
        for process in processes:
            stop(process)


# --- more API tokens, and where the dashboard's screenshots are ----------------------------------


@pytest.fixture
def make_token(tocsin: Tocsin, tocsin_env: dict[str, str], tmp_path: Path) -> Callable[[str, str], str]:
    """Create another API token (name, role) in the running server's store; returns the token."""

    def make(name: str, role: str) -> str:
        output = run_cli(["token", "create", "--name", name, "--role", role], tocsin_env, tmp_path / "logs")
        return output.strip().splitlines()[-1].strip()

    return make


_SCREENSHOTS = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    """The folder for browser screenshots, below this run's temporary base (named at the end)."""
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    pytestconfig.stash[_SCREENSHOTS] = folder
    return folder


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    folder = config.stash.get(_SCREENSHOTS, None)
    if folder is not None:
        terminalreporter.write_line(f"dashboard screenshots: {folder}")


# --- the production processes of the Procfile, each its own OS process ----------------------------


def wait_healthy(base_url: str, timeout: float = STARTUP_TIMEOUT) -> None:
    """Wait until `GET /health` answers 200 (the web process is up and no follower is stuck)."""

    def healthy() -> bool:
        try:
            return http("GET", base_url + "/health", timeout=2)[0] == 200
        except OSError:
            return False

    wait_until(healthy, timeout, lambda: f"{base_url} never answered GET /health with 200")


class ProductionProcesses:
    """`tocsin <command>` processes (`web`, `ingest`, `project`, `ticker`, `escalate`), each in a
    session of its own as honcho and systemd start them. A command's output goes to one log,
    kept across restarts and attached to the report of a failing test."""

    def __init__(self, env: dict[str, str], log_dir: Path, request: pytest.FixtureRequest):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # One small gunicorn worker: enough for a test, and quick to start again.
        self.env = {**env, "TOCSIN_PORT": str(self.port), "TOCSIN_WEB_WORKERS": "1", "TOCSIN_WEB_THREADS": "4"}
        self.log_dir = log_dir
        self.request = request
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, command: str) -> subprocess.Popen:
        log = self.log_dir / f"tocsin-{command}.log"
        register_log(self.request, f"tocsin {command}", log)
        with open(log, "ab") as out:
            out.write(f"--- tocsin {command} started at {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            process = subprocess.Popen(
                [sys.executable, "-m", "tocsin.cli", command], cwd=REPO_ROOT, env=self.env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.running[command] = process
        return process

    def start_copy(self, command: str, number: int) -> subprocess.Popen:
        """Another copy of a command that scales out (`worker`), known here as "<command>-<number>"
        (for `kill`); the copies share the command's log."""
        process = self.start(command)
        self.running[f"{command}-{number}"] = self.running.pop(command)
        return process

    def kill(self, command: str) -> None:
        """SIGKILL the command's whole process group (gunicorn's workers, ingest's render workers
        too), as a crash or an OOM kill would: no clean-up, no step-down."""
        process = self.running.pop(command)
        try:
            os.killpg(process.pid, signal.SIGKILL)  # a session leader's pid is its group's id
        except ProcessLookupError:
            pass
        process.wait(timeout=10)

    def exited(self) -> dict[str, int]:
        """The commands that ended by themselves (not killed here), with their exit status."""
        return {command: process.returncode for command, process in self.running.items()
                if process.poll() is not None}

    def stop_all(self) -> None:
        for process in self.running.values():
            stop(process)
            try:
                os.killpg(process.pid, signal.SIGKILL)  # what outlived its leader
            except ProcessLookupError:
                pass
        self.running.clear()


@pytest.fixture
def production_processes(tocsin_env: dict[str, str], tmp_path: Path,
                         request: pytest.FixtureRequest) -> Iterator[ProductionProcesses]:
    """Start and kill production processes against the test's database; all stopped at the end."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    processes = ProductionProcesses(tocsin_env, log_dir, request)
    try:
        yield processes
    finally:
        processes.stop_all()
