"""The production processes of the Procfile (`tocsin web`, `ingest`, `project`) on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import load_payload
from tests.e2e.conftest import REPO_ROOT, STARTUP_TIMEOUT, free_port, http, register_log, run_cli, stop

FIRING = load_payload("captured/alertmanager/am-02-firing-group-3-alerts.json")


def niceness(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of proc(5), counted after the command name


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize("backend", ["postgres"])
def test_web_ingest_and_project_processes_receive_and_show_an_alert(tocsin_env, tmp_path, request, wait_until,
                                                                    backend):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    run_cli(["migrate"], tocsin_env, log_dir)
    token = run_cli(["token", "create", "--name", "ops", "--role", "admin"], tocsin_env, log_dir).split()[-1]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**tocsin_env, "TOCSIN_PORT": str(port), "TOCSIN_WEB_WORKERS": "1", "TOCSIN_WEB_THREADS": "4"}
    processes = {}
    try:
        for name in ("web", "ingest", "project"):
            log = log_dir / f"tocsin-{name}.log"
            register_log(request, f"tocsin {name}", log)
            with open(log, "wb") as out:
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "tocsin.cli", name], cwd=REPO_ROOT, env=env,
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )

        def healthy():
            try:
                return http("GET", base_url + "/health", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(healthy, STARTUP_TIMEOUT, lambda: f"`tocsin web` never answered GET {base_url}/health")
        headers = {"Authorization": token}
        status, integration = http("POST", base_url + "/api/v1/integrations/",
                                   {"type": "alertmanager", "name": "prod"}, headers)
        assert status == 201, integration
        assert integration["link"].startswith(base_url)
        post = urllib.request.Request(integration["link"], data=FIRING, method="POST",
                                      headers={"Content-Type": "application/json"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(post, timeout=10) as response:
            assert (response.status, response.read()) == (200, b'"Ok."\n')

        def group():
            status, page = http("GET", f"{base_url}/api/v1/alert_groups/?integration_id={integration['id']}",
                                headers=headers)
            return status == 200 and page["results"] and page["results"][0]

        shown = wait_until(group, 15, lambda: "the alert group never showed up in the API")
        assert (shown["alerts_count"], shown["state"]) == (1, "firing")
        assert shown["last_alert"]["payload"]["groupKey"] == '{}:{alertname="InstanceDown"}'

        # The web process (gunicorn and its workers) yields the CPU to the pipeline.
        web = processes["web"].pid
        own = os.nice(0)
        assert niceness(web) == min(own + 10, 19)
        assert all(niceness(worker) == min(own + 10, 19) for worker in children(web))
        assert niceness(processes["ingest"].pid) == own
    finally:
        for process in processes.values():
            stop(process)


def test_a_bad_web_niceness_is_refused_before_starting(tocsin_env, tmp_path):
    env = {**tocsin_env, "TOCSIN_WEB_NICE": "high", "TOCSIN_PORT": str(free_port())}
    done = subprocess.run([sys.executable, "-m", "tocsin.cli", "web"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "TOCSIN_WEB_NICE must be a whole number from 0 to 19, not 'high'" in done.stderr
