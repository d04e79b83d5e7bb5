"""A PostgreSQL outage: every inbound path and the API answer 503 within 2 s, and accepting
resumes within 5 s of the database's return, with no stale connection reaching a client.

The outage is a TCP proxy in front of the shared server that the test cuts (every connection
through it closed, new ones refused) and restores; the server itself keeps running.
"""

from __future__ import annotations

import smtplib
import socket
import threading
import time
import uuid
from dataclasses import replace
from urllib.parse import urlparse, urlunparse

import pytest

from adapters.settings import Settings
from tests.conftest import drop_schema, require_postgres
from tests.integration.conftest import inbound_path

FIRING = {"status": "firing", "groupKey": "{}:{alertname=\"Outage\"}", "alerts": []}
DOMAIN = "alerts.example.com"


class CuttableProxy:
    """Forwards a local port to the database; ``cut()`` drops and refuses, ``restore()`` heals."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source, sink)

    def _drop(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with self._lock:
                self._open.discard(sock)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            live = list(self._open)
        self._drop(*live)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._listener.close()
        self.cut()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def proxy():
    url = urlparse(require_postgres())
    proxy = CuttableProxy(url.hostname or "127.0.0.1", url.port or 5432)
    yield proxy
    proxy.close()


@pytest.fixture
def settings(proxy, tmp_path):
    url = require_postgres()
    parsed = urlparse(url)
    through_proxy = urlunparse(parsed._replace(netloc=f"{parsed.netloc.rsplit('@', 1)[0]}@127.0.0.1:{proxy.port}"))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield replace(
        Settings(database_url=through_proxy, database_schema=schema, base_url="http://tocsin.test", data_dir=tmp_path),
        inbound_email_domain=DOMAIN,
    )
    drop_schema(url, schema)


def timed(call):
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


def assert_unavailable(response, took: float, what: str) -> None:
    assert response.status_code == 503, f"{what}: {response.status_code} {response.get_data(as_text=True)[:200]}"
    assert response.is_json, f"{what}: {response.content_type}"
    assert int(response.headers["Retry-After"]) > 0, what
    assert took < 2.0, f"{what} took {took:.2f}s"


def test_an_outage_answers_503_within_2s_and_accepting_resumes_within_5s(runtime, app, client, proxy):
    from web.inbound import directory
    from workers.smtp import SMTPReceiver

    made = client.post("/api/v1/integrations/", json={"type": "alertmanager", "name": "Outage"})
    assert made.status_code == 201
    alert_url = inbound_path(made.get_json())
    mail = client.post("/api/v1/integrations/", json={"type": "inbound_email", "name": "Mail"}).get_json()
    mail_to = mail["inbound_email"]
    assert client.post(alert_url, json=FIRING).status_code == 200
    smtp = SMTPReceiver(runtime, f"127.0.0.1:{free_port()}")
    smtp.start()
    try:
        proxy.cut()

        directory.forget()  # a token this process has not looked up lately
        response, took = timed(lambda: client.post(alert_url, json=FIRING))
        assert_unavailable(response, took, "inbound alert, uncached token")
        response, took = timed(lambda: client.post(alert_url, json=FIRING))
        assert_unavailable(response, took, "inbound alert")
        response, took = timed(lambda: client.get("/api/v1/alert_groups/"))
        assert_unavailable(response, took, "alert group list")
        response, took = timed(lambda: client.post("/api/v1/integrations/", json={"type": "webhook"}))
        assert_unavailable(response, took, "integration creation")
        mailgun = {"recipient": mail_to, "sender": "a@example.com", "subject": "Down", "body-plain": "x"}
        response, took = timed(lambda: client.post("/integrations/v1/inbound_email_webhook", data=mailgun))
        assert_unavailable(response, took, "email webhook")
        response, took = timed(lambda: client.get("/health"))
        assert (response.status_code, response.get_json()["database"]) == (503, "unreachable") and took < 2.0

        began = time.monotonic()
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as session:
            session.ehlo()
            session.mail("a@example.com")
            code, _ = session.rcpt(mail_to)
            if code == 250:
                code, _ = session.data(b"Subject: Down\r\n\r\nx\r\n")
        assert code == 451 and time.monotonic() - began < 2.0, (code, time.monotonic() - began)

        proxy.restore()
        restored = time.monotonic()
        while (status := client.post(alert_url, json=FIRING).status_code) != 200:
            assert status == 503, status
            assert time.monotonic() - restored < 5.0, "accepting did not resume within 5 s"
            time.sleep(0.05)

        statuses = []
        for number in range(20):
            created = client.post("/api/v1/integrations/", json={"type": "webhook", "name": f"w{number}"})
            statuses.append(created.status_code)
            statuses.append(client.get("/api/v1/alert_groups/").status_code)
            statuses.append(client.post(alert_url, json=FIRING).status_code)
        assert set(statuses) <= {200, 201}, statuses
    finally:
        smtp.stop()


def test_a_process_that_starts_serving_late_is_not_taken_for_cut_off():
    # A gunicorn worker may get its first request long after it was built; the probe's clock
    # must start with the probe, or that request is refused as if the database were down.
    from adapters.reachability import DatabaseReachability

    probe = DatabaseReachability(require_postgres(), stale_after=0.2)
    time.sleep(0.3)
    probe.start()
    try:
        assert probe.reachable
    finally:
        probe.stop()
