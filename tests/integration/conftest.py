"""Helpers for tests that drive the HTTP API (the `client` fixture comes from tests/conftest.py),
and the real servers on this machine that tests of sending things out send to."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import eventually, load_payload
from tests.local_servers import Mailbox, Receiver, smtp_server


@pytest.fixture
def make_integration(client):
    def make(type_: str = "alertmanager", **fields) -> dict:
        response = client.post("/api/v1/integrations/", json={"type": type_, **fields})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return make


@pytest.fixture
def tocsin(settings, runtime, monkeypatch, capsys):
    """Run the command line against the test's database; returns (exit code, stdout, stderr)."""
    from tocsin.cli import main

    for name in ("TOCSIN_DATABASE_URL", "TOCSIN_DATABASE_SCHEMA", "TOCSIN_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    if settings.backend == "postgres":
        monkeypatch.setenv("TOCSIN_DATABASE_URL", settings.database_url)
        monkeypatch.setenv("TOCSIN_DATABASE_SCHEMA", settings.database_schema)
    else:
        monkeypatch.setenv("TOCSIN_DATA_DIR", str(settings.data_dir))

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse refusing the arguments
            code = exit_.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def inbound_path(integration: dict) -> str:
    """The path part of an integration's link (the test client talks to the app directly)."""
    return integration["link"].removeprefix("http://tocsin.test")


def groups_of(client, integration_id: str) -> list[dict]:
    return client.get(f"/api/v1/alert_groups/?integration_id={integration_id}").get_json()["results"]


def wait_for_groups(client, integration_id: str, count: int, **expect) -> list[dict]:
    """Wait until the integration has ``count`` groups (and, if given, the first matches ``expect``)."""

    def check():
        groups = groups_of(client, integration_id)
        if len(groups) != count:
            return None
        if expect and any(groups[0].get(k) != v for k, v in expect.items()):
            return None
        return groups

    return eventually(check, describe=f"{count} group(s) {expect or ''} for {integration_id}")


def send(client, integration: dict, payload: str | dict) -> None:
    """Post a fixture file (by name) or a dict to the integration link; the sender gets 200 "Ok."."""
    if isinstance(payload, str):
        response = client.post(inbound_path(integration), data=load_payload(payload), content_type="application/json")
    else:
        response = client.post(inbound_path(integration), json=payload)
    assert (response.status_code, response.get_json()) == (200, "Ok.")


# --- real servers on this machine, and a resolver for addresses that are not ------------------------


@pytest.fixture
def mailbox():
    """A real SMTP server on 127.0.0.1 that keeps every message (see ``tests.local_servers``)."""
    with smtp_server(Mailbox()) as box:
        yield box


@pytest.fixture
def receiver():
    """A real HTTP server on 127.0.0.1 that records every request."""
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def second_loopback():
    """A server on 127.0.0.2 (another loopback address) that a redirect points to."""
    server = Receiver("127.0.0.2")
    yield server
    server.stop()


@pytest.fixture
def resolver_and_no_connections(monkeypatch):
    """``internal.test`` resolves to an address a test chooses; any connection attempt to a
    non-loopback address is recorded and refused, so nothing can leave this machine."""
    answers: dict[str, str] = {}
    attempts: list = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            family = socket.AF_INET6 if ":" in answers[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    def connect(sock, address):
        if not str(address[0]).startswith("127."):
            attempts.append(address)
            raise ConnectionRefusedError("this test connects to nothing outside the machine")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return answers, attempts
