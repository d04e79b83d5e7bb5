"""What `tocsin serve` prints when it starts: a few lines with the URLs, the SMTP address and, on
the first start only, the admin token, which works. A real process on each backend."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_env(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env["TOCSIN_DATA_DIR"] = str(settings.data_dir)
    if settings.backend == "postgres":
        env["TOCSIN_DATABASE_URL"] = settings.database_url
        env["TOCSIN_DATABASE_SCHEMA"] = settings.database_schema
    return env


class Server:
    def __init__(self, env: dict[str, str], port: int, smtp_port: int):
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tocsin.cli", "serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env={**env, "TOCSIN_SMTP_ADDRESS": f"127.0.0.1:{smtp_port}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        # Drained all along, so the server never blocks on a full pipe.
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()

    def start_up_output(self, timeout: float = 30.0) -> list[str]:
        """Stdout up to the banner's last line (the admin token, or the hint about tokens)."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(line.rstrip("\n"))
            if line.lstrip().startswith(("admin token", "API tokens")):
                return seen
        _, stderr = self.stop()
        pytest.fail(f"no start-up banner; stdout {seen!r}, stderr {stderr!r}")

    def get(self, path: str, token: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": token})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def stop_when_exited(self, timeout: float = 30.0) -> tuple[int, str]:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.stop()

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, as a person at the terminal would; returns the exit code and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode, self.process.stderr.read()


def test_first_start_prints_the_urls_and_a_working_token_in_a_few_lines(settings):
    env, port, smtp_port = serve_env(settings), free_port(), free_port()
    server = Server(env, port, smtp_port)
    try:
        lines = server.start_up_output()
        assert len(lines) == 6, lines
        heading, dashboard, api, integrations, email, token_line = lines
        assert heading.startswith(f"Tocsin is listening on 127.0.0.1:{port} (")
        assert f"http://127.0.0.1:{port}/ " in dashboard
        assert f"http://127.0.0.1:{port}/api/v1/" in api
        assert f"http://127.0.0.1:{port}/integrations/v1/<type>/<token>/" in integrations
        assert f"smtp://127.0.0.1:{smtp_port}" in email
        assert token_line.split()[:2] == ["admin", "token"]
        token = token_line.split()[2]
        assert server.get("/api/v1/integrations/", token) == 200
    finally:
        code, stderr = server.stop()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "INFO" not in stderr  # no log lines around the banner

    server = Server(env, port, smtp_port)  # the same store again: no new token is made
    try:
        again = server.start_up_output()
        assert server.get("/api/v1/integrations/", token) == 200
        assert server.get("/api/v1/integrations/", token + "x") == 403
    finally:
        code, stderr = server.stop()
    assert len(again) == 6 and "tocsin token list" in again[-1] and token not in "\n".join(again)
    assert code == 0, stderr


def test_a_taken_port_is_said_plainly_and_the_admin_token_waits_for_a_start_that_shows_it(settings):
    env, smtp_port = serve_env(settings), free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Server(env, port, smtp_port)
        code, stderr = server.stop_when_exited()
    assert code == 1
    assert f"Tocsin cannot listen on 127.0.0.1:{port}: Address already in use" in stderr
    assert "Traceback" not in stderr

    server = Server(env, free_port(), smtp_port)
    try:
        lines = server.start_up_output()
    finally:
        server.stop()
    assert lines[-1].split()[:2] == ["admin", "token"]
