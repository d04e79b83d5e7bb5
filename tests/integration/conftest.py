"""Helpers for tests that drive the HTTP API (the `client` fixture comes from tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import eventually, load_payload


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
