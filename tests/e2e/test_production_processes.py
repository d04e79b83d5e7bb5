"""The production processes of the Procfile (`tocsin web`, `ingest`, `project`) on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import load_payload
from tests.e2e.conftest import REPO_ROOT, free_port, http, run_cli, wait_healthy

FIRING = load_payload("captured/alertmanager/am-02-firing-group-3-alerts.json")


def niceness(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of proc(5), counted after the command name


def session_niceness(pid: int) -> int | None:
    """The niceness of the process's autogroup ("/autogroup-42 nice 10"): its session's share.

    None for a process in no autogroup (an empty file): one whose session was never started
    since boot, such as a service's child that kept its parent's session.
    """
    fields = Path(f"/proc/{pid}/autogroup").read_text().split()
    return int(fields[-1]) if fields else None


AUTOGROUPS = Path("/proc/self/autogroup").exists()


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize("backend", ["postgres"])
def test_web_ingest_and_project_processes_receive_and_show_an_alert(tocsin_env, production_processes, wait_until,
                                                                    backend):
    log_dir = production_processes.log_dir
    run_cli(["migrate"], tocsin_env, log_dir)
    token = run_cli(["token", "create", "--name", "ops", "--role", "admin"], tocsin_env, log_dir).split()[-1]
    base_url = production_processes.base_url
    processes = {name: production_processes.start(name) for name in ("web", "ingest", "project")}
    wait_healthy(base_url)
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
    if AUTOGROUPS:  # where the CPU is shared between sessions first, the session yields too
        assert session_niceness(web) == 10
        assert session_niceness(processes["ingest"].pid) == 0


def test_a_bad_web_niceness_is_refused_before_starting(tocsin_env, tmp_path):
    env = {**tocsin_env, "TOCSIN_WEB_NICE": "high", "TOCSIN_PORT": str(free_port())}
    done = subprocess.run([sys.executable, "-m", "tocsin.cli", "web"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "TOCSIN_WEB_NICE must be a whole number from 0 to 19, not 'high'" in done.stderr


@pytest.mark.skipif(not AUTOGROUPS, reason="this kernel has no autogroup scheduling (/proc/self/autogroup)")
def test_the_web_lowers_its_sessions_priority_only_when_the_session_is_its_own():
    show = ("import os; from tocsin.cli import lower_priority; lower_priority(7); "
            "fields = open('/proc/self/autogroup').read().split(); "
            "print(os.nice(0), fields[-1] if fields else None)")
    own_session = session_niceness(os.getpid())

    def run(**options) -> list[int | None]:
        done = subprocess.run([sys.executable, "-c", show], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=30, **options)
        assert done.returncode == 0, done.stderr
        process, session = done.stdout.split()
        return [int(process), None if session == "None" else int(session)]

    # Leading its own session (honcho, systemd): the process and its session yield.
    assert run(start_new_session=True) == [min(os.nice(0) + 7, 19), 7]
    # Started from a shell or a test run: only the process; the shared session keeps its share.
    assert run() == [min(os.nice(0) + 7, 19), own_session]
    assert session_niceness(os.getpid()) == own_session
