"""Real servers on this machine for tests that send things out: an HTTP server that records what
it receives and an SMTP server (aiosmtpd) that keeps every message. Only 127.0.0.0/8 is used."""

from __future__ import annotations

import email
import email.policy
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from adapters.http_guard import OutgoingPolicy

# What the senders are allowed to reach in these tests: the servers here, on 127.0.0.1.
LOCAL = OutgoingPolicy.from_setting("127.0.0.1")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Receiver:
    """A local HTTP server that records every request and answers ``status`` with ``body`` (after
    ``delay``), or redirects to ``redirect_to``."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.requests: list[dict] = []
        self.status, self.body, self.content_type, self.delay, self.redirect_to = 200, b"", "text/plain", 0.0, None
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                receiver.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                          "body": self.rfile.read(length)})  # fmt: skip
                time.sleep(receiver.delay)
                if receiver.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect_to)
                    body = b""
                else:
                    self.send_response(receiver.status)
                    self.send_header("Content-Type", receiver.content_type)
                    body = receiver.body
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


class Mailbox:
    """aiosmtpd handler: keeps every message; ``rcpt_answer`` refuses recipients when set."""

    def __init__(self):
        self.messages: list[tuple[object, email.message.EmailMessage]] = []
        self.logins: list[tuple[str, str]] = []
        self.rcpt_answer: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append((envelope, parsed))
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            return AuthResult(success=auth_data.password == b"s3cret:/@", handled=False)
        return AuthResult(success=False, handled=False)


@contextmanager
def smtp_server(mailbox: Mailbox) -> Iterator[Mailbox]:
    """``mailbox`` behind a real SMTP server on 127.0.0.1, its port in ``mailbox.port``; it offers
    AUTH without TLS and checks logins with ``mailbox.authenticate``."""
    mailbox.port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port, authenticator=mailbox.authenticate,
                            auth_require_tls=False)  # fmt: skip
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
