"""A real SMTP client (swaks) sends mail to Tocsin's SMTP receiver.

Mail to ``<token>@inbound.oncall.test`` becomes an alert of that ``inbound_email`` integration,
grouped by subject and resolved by an "OK" mail; swaks shows what a sending MTA would get back
(250 only once the alert is stored, 550 for an unknown recipient, 552 for an oversize message,
451 while the store is down). The messages are the captured swaks DATA in
``captured/email/*.eml``. Most tests run the receiver in the test process on the ``runtime``
fixture; the last ones start ``tocsin serve`` (embedded receiver) and ``tocsin smtp``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import eventually, load_payload, unavailable
from adapters.group_commit import InboxUnavailable

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("swaks_binary")]

REPO_ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "inbound.oncall.test"
CAPTURED_TOKEN = "Yz8Pq2TestToken"
SIZE_LIMIT = 64 * 1024
SENDER = "zabbix@monitoring.example.com"
SUBJECT = "PROBLEM: Disk /var is 95% full on db-1"
MESSAGE = (
    "Problem started at 20:15:00 on 2026.11.30\nProblem name: Disk /var is 95% full\nHost: db-1\n"
    "Severity: High\nOperational data: 95.2 %\nOriginal problem ID: 48213"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def swaks_binary() -> str:
    path = shutil.which("swaks")
    if path is None:
        unavailable("`swaks` is not installed (apt-get install -y swaks)")
    return path


@pytest.fixture
def settings(settings):
    """The shared settings with the captured mail's domain and a small size limit."""
    return replace(settings, inbound_email_domain=DOMAIN, max_body_bytes=SIZE_LIMIT)


@pytest.fixture
def smtp_address(runtime) -> str:
    """The SMTP receiver, started in this process on a free port, on the test's runtime."""
    from workers.smtp import SMTPReceiver

    receiver = SMTPReceiver(runtime, f"127.0.0.1:{free_port()}")
    receiver.start()
    yield receiver.address
    receiver.stop()


class Sent:
    def __init__(self, done: subprocess.CompletedProcess):
        self.returncode = done.returncode
        self.transcript = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"swaks exited {self.returncode}:\n{self.transcript}"


def swaks(swaks_binary: str, address: str, to: str, message: str = "01-plain-text.eml",
          data: bytes | None = None) -> Sent:
    host, _, port = address.rpartition(":")
    if data is None:
        token = to.split(",")[0].partition("@")[0]
        data = load_payload(f"captured/email/{message}").replace(CAPTURED_TOKEN.encode(), token.encode())
    done = subprocess.run(
        [swaks_binary, "--server", host, "--port", port, "--from", SENDER, "--to", to,
         "--helo", "sender.example", "--timeout", "30", "--data", "-"],
        input=data, capture_output=True, timeout=90,
    )
    return Sent(done)


def accepted(sent: Sent) -> None:
    assert sent.returncode == 0, sent
    assert "<-  250 2.0.0 OK: alert accepted" in sent.transcript, sent


@pytest.fixture
def make_email_integration(client):
    def make(type_: str = "inbound_email", name: str | None = None) -> dict:
        response = client.post("/api/v1/integrations/", json={"type": type_, **({"name": name} if name else {})})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return make


def groups_of(client, integration: dict) -> list[dict]:
    return client.get(f"/api/v1/alert_groups/?integration_id={integration['id']}").get_json()["results"]


def only_group(client, integration: dict, **expect) -> dict:
    def check():
        groups = groups_of(client, integration)
        if len(groups) == 1 and all(groups[0].get(k) == v for k, v in expect.items()):
            return groups[0]
        return None

    return eventually(check, describe=f"one alert group {expect} for {integration['id']}")


def alert_payloads(client, group: dict) -> list[dict]:
    response = client.get(f"/api/v1/alerts/?alert_group_id={group['id']}")
    return [alert["payload"] for alert in response.get_json()["results"]]


def address_of(integration: dict) -> str:
    """The address the API shows for an inbound email integration: <token>@<domain>."""
    assert integration["inbound_email"].endswith(f"@{DOMAIN}"), integration
    return integration["inbound_email"]


def token_of(integration: dict) -> str:
    if integration["type"] == "inbound_email":
        return address_of(integration).partition("@")[0]
    return integration["link"].rstrip("/").rpartition("/")[2]


# --- in-process receiver ------------------------------------------------------------------------


def test_plain_mail_becomes_an_alert_group(swaks_binary, smtp_address, client, make_email_integration):
    integration = make_email_integration(name="Zabbix mail")

    sent = swaks(swaks_binary, smtp_address, address_of(integration).replace(DOMAIN, DOMAIN.upper()))

    accepted(sent)
    group = only_group(client, integration, state="firing")
    assert group["title"] == SUBJECT
    assert alert_payloads(client, group) == [{"subject": SUBJECT, "message": MESSAGE, "sender": SENDER}]


def test_html_only_mail_is_converted_to_text(swaks_binary, smtp_address, client, make_email_integration):
    integration = make_email_integration()

    accepted(swaks(swaks_binary, smtp_address, address_of(integration), "02-html-only.eml"))

    group = only_group(client, integration)
    assert group["title"] == "[FIRING:1] InstanceDown (web-1:9100 node critical)"
    [payload] = alert_payloads(client, group)
    assert "<" not in payload["message"]
    assert "web-1:9100 of job node has been down for more than 1 minute." in payload["message"]
    assert "http://prometheus.example.com:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1" in payload["message"]
    assert payload["sender"] == "alertmanager@monitoring.example.com"


def test_ok_mail_resolves_the_group(swaks_binary, smtp_address, client, make_email_integration):
    integration = make_email_integration()
    accepted(swaks(swaks_binary, smtp_address, address_of(integration), "01-plain-text.eml"))
    only_group(client, integration, state="firing")

    accepted(swaks(swaks_binary, smtp_address, address_of(integration), "06-body-ok.eml"))

    group = only_group(client, integration, state="resolved")
    assert group["alerts_count"] == 2
    assert group["title"] == SUBJECT


def test_unknown_recipients_get_550_and_no_alert(swaks_binary, smtp_address, client, make_email_integration):
    integration = make_email_integration()
    webhook = make_email_integration("webhook")
    refused = [
        f"NoSuchToken123@{DOMAIN}",  # no such integration
        f"{token_of(integration)}@elsewhere.example",  # right token, wrong domain
        f"{token_of(webhook)}@{DOMAIN}",  # an integration, but not an inbound email one
    ]
    for recipient in refused:
        sent = swaks(swaks_binary, smtp_address, recipient)

        assert sent.returncode == 24, sent  # swaks: no RCPTs accepted
        assert "<** 550 5.1.1 Unknown recipient" in sent.transcript, sent

    # Nothing got in: one good mail gives exactly one group with one alert.
    accepted(swaks(swaks_binary, smtp_address, address_of(integration)))
    assert only_group(client, integration)["alerts_count"] == 1
    assert groups_of(client, webhook) == []


def test_oversize_mail_gets_552(swaks_binary, smtp_address, client, make_email_integration):
    integration = make_email_integration()
    padding = b"".join(b"line %06d of a very long alert body\r\n" % n for n in range(SIZE_LIMIT // 30))
    data = (f"To: {address_of(integration)}\r\nFrom: {SENDER}\r\nSubject: Too big\r\n\r\n").encode() + padding

    sent = swaks(swaks_binary, smtp_address, address_of(integration), data=data)

    assert sent.returncode == 26, sent  # swaks: server did not accept mail following data
    assert "<** 552" in sent.transcript, sent
    accepted(swaks(swaks_binary, smtp_address, address_of(integration)))
    assert only_group(client, integration)["title"] == SUBJECT


def test_several_recipients_give_one_alert_per_integration(
    swaks_binary, smtp_address, client, make_email_integration
):
    first, second = make_email_integration(), make_email_integration()
    recipients = [address_of(first), address_of(second), address_of(first), f"NoSuchToken123@{DOMAIN}"]

    sent = swaks(swaks_binary, smtp_address, ",".join(recipients))

    accepted(sent)
    assert "<** 550 5.1.1 Unknown recipient" in sent.transcript, sent
    for integration in (first, second):
        group = only_group(client, integration)
        assert group["title"] == SUBJECT
        assert group["alerts_count"] == 1


def test_store_unavailable_gets_451_and_the_retry_is_accepted(
    swaks_binary, smtp_address, client, make_email_integration, runtime, monkeypatch
):
    integration = make_email_integration()

    def store_down(entry):
        raise InboxUnavailable("database is down")

    with monkeypatch.context() as patch:
        patch.setattr(runtime.committer, "submit", store_down)
        sent = swaks(swaks_binary, smtp_address, address_of(integration))

    assert sent.returncode == 26, sent
    assert "<** 451 4.3.0" in sent.transcript, sent
    accepted(swaks(swaks_binary, smtp_address, address_of(integration)))  # the MTA's retry
    assert only_group(client, integration)["alerts_count"] == 1


# --- the receiver in `tocsin serve` and in `tocsin smtp` ------------------------------------------


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`tocsin smtp` exited {process.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"`tocsin smtp` did not listen on {port} within {timeout}s:\n{log.read_text()}", pytrace=False)


@pytest.mark.parametrize("mode", ["tocsin serve", "tocsin smtp"])
def test_the_commands_receive_mail(swaks_binary, tocsin_env, tmp_path, request, wait_until, mode):
    port = free_port()
    tocsin_env["TOCSIN_INBOUND_EMAIL_DOMAIN"] = DOMAIN
    # `serve` runs the receiver in-process; for `tocsin smtp` it has none, a separate process does.
    tocsin_env["TOCSIN_SMTP_ADDRESS"] = f"127.0.0.1:{port}" if mode == "tocsin serve" else ""
    tocsin = request.getfixturevalue("tocsin")
    if mode == "tocsin smtp":
        log = tmp_path / "tocsin-smtp.log"
        env = {**tocsin_env, "TOCSIN_SMTP_ADDRESS": f"127.0.0.1:{port}"}
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "tocsin.cli", "smtp"], cwd=REPO_ROOT, env=env,
                                       stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        request.addfinalizer(lambda: (process.terminate(), process.wait(timeout=10)))
        wait_for_port(port, process, log)
    status, integration = tocsin.api("POST", "/api/v1/integrations/", {"type": "inbound_email"})
    assert status == 201, integration

    accepted(swaks(swaks_binary, f"127.0.0.1:{port}", address_of(integration)))

    def group():
        status, body = tocsin.api("GET", f"/api/v1/alert_groups/?integration_id={integration['id']}")
        results = body["results"] if status == 200 else []
        return results[0] if len(results) == 1 else None

    found = wait_until(group, 30.0, lambda: f"no alert group for the mail sent through `{mode}`")
    assert found["title"] == SUBJECT
