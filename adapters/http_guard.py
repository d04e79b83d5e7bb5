"""Outgoing HTTP that cannot be pointed at the inside of the network (server-side request forgery).

Users choose where Tocsin sends (a personal webhook, an Apprise URL, later outgoing webhooks), so
every outgoing request refuses private, loopback, link-local, shared, reserved and multicast
addresses, unless ``TOCSIN_OUTGOING_ALLOW`` lists them. The check is made on the address a
socket is about to connect to, after the name was resolved, once per connection: a DNS name that
resolves to a private address is refused, a redirect to one is refused when it connects, and a
name that resolves differently the second time (DNS rebinding) gains nothing, since the address
checked is the address used.

How: urllib3 (under ``requests``, and so under Apprise) opens every connection through
``urllib3.util.connection.create_connection``. ``guarded(policy)`` installs a replacement once and
makes it check, for the current thread (a context variable), the addresses it connects to; outside
``guarded`` it does what the original does. When an HTTP(S) proxy is configured through the
environment, the address checked is the proxy's: the proxy then decides where requests go.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import urllib3.util.connection as urllib3_connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutgoingRefused(OSError):
    """A connection the policy does not allow; ``reason`` says which address and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: IPAddress) -> str | None:
    """What makes an address internal ("loopback", "private", ...); None for a public one."""
    for candidate in (embedded_ipv4(address), address):  # the IPv4 address says more, if any
        if candidate is None:
            continue
        if candidate.is_loopback:
            return "loopback"
        if candidate.is_link_local:
            return "link-local"
        if candidate.is_multicast:
            return "multicast"
        if candidate.is_unspecified:
            return "unspecified"
        if candidate.is_reserved:
            return "reserved"
        if candidate.is_private:
            return "private"
        if not candidate.is_global:
            return "reserved"
    return None


@dataclass(frozen=True)
class OutgoingPolicy:
    """Which internal addresses outgoing requests may reach anyway (``allowed`` networks)."""

    allowed: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def from_setting(cls, text: str | None) -> OutgoingPolicy:
        """``TOCSIN_OUTGOING_ALLOW``: addresses and networks, separated by commas or spaces
        (``127.0.0.1, 10.0.0.0/8, ::1``). Names are not taken: what a name resolves to can
        change, an address cannot. Raises ValueError naming the first entry that is neither."""
        networks = []
        for entry in (text or "").replace(",", " ").split():
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"TOCSIN_OUTGOING_ALLOW: {entry!r} is not an IP address or network") from None
        return cls(tuple(networks))

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why a connection to ``address`` is refused, or None if it is allowed."""
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
        kind = _kind(ip)
        if kind is None:
            return None
        candidates = [ip] + ([embedded] if (embedded := embedded_ipv4(ip)) else [])
        if any(c in network for c in candidates for network in self.allowed if c.version == network.version):
            return None
        return f"{ip} is a {kind} address (not listed in TOCSIN_OUTGOING_ALLOW)"

    def literal_refusal(self, host: str | None) -> str | None:
        """Why ``host`` is refused if it is an IP address literal (checked when an address is
        saved, so a plainly internal one is refused at once); None for names and allowed ones."""
        if not host:
            return None
        try:
            return self.refusal(host.strip("[]"))
        except ValueError:
            return None  # a name: checked when it is connected to


@dataclass
class GuardRecord:
    """What the guard refused while it was active (for telling a refusal from a network error)."""

    refusals: list[str] = field(default_factory=list)


_active: ContextVar[tuple[OutgoingPolicy, GuardRecord] | None] = ContextVar("tocsin_outgoing_guard", default=None)
_original_create_connection = urllib3_connection.create_connection
_install_lock = threading.Lock()
_installed = False


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            urllib3_connection.create_connection = _create_connection
            _installed = True


@contextmanager
def guarded(policy: OutgoingPolicy) -> Iterator[GuardRecord]:
    """Within the block, this thread's urllib3 connections obey ``policy``."""
    _install()
    record = GuardRecord()
    token = _active.set((policy, record))
    try:
        yield record
    finally:
        _active.reset(token)


def _create_connection(address, timeout=urllib3_connection._DEFAULT_TIMEOUT, source_address=None, socket_options=None):
    active = _active.get()
    if active is None:
        return _original_create_connection(address, timeout, source_address, socket_options)
    policy, record = active
    host, port = address
    host = host.strip("[]")
    refused: OutgoingRefused | None = None
    failed: OSError | None = None
    for family, socktype, proto, _, sockaddr in socket.getaddrinfo(
        host, port, urllib3_connection.allowed_gai_family(), socket.SOCK_STREAM
    ):
        reason = policy.refusal(sockaddr[0])
        if reason is not None:
            record.refusals.append(reason)
            refused = OutgoingRefused(f"refused to connect to {host}: {reason}")
            continue
        sock = socket.socket(family, socktype, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is not urllib3_connection._DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)  # the address just checked, not the name again
            return sock
        except OSError as exc:
            sock.close()
            failed = exc
    # A network error on an allowed address says more (and may pass) than a refused one.
    raise failed or refused or OSError(f"{host} resolves to no address")
