"""Channel addresses, checked and masked before they are saved, and the outgoing-address policy:
pure checks, no network (the senders meet real servers in tests/integration)."""

from __future__ import annotations

import importlib
import ipaddress
import re
from pathlib import Path

import pytest
from apprise.manager_plugins import NotificationManager

from adapters.http_guard import OutgoingPolicy
from adapters.notify_channels import (
    FILE_PARAMETERS,
    NAMES_A_FILE,
    NOT_HTTP_SCHEMES,
    InvalidAddress,
    check_apprise_url,
    check_webhook_url,
    parse_smtp_url,
)
from domain.notification_rules import shown_channels

# Services users ask for, with a URL in each one's format and the secret that must not be shown.
SERVICES = [
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "TIiajkdnlazkcOXrIdevi7FQ"),
    ("https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "TIiajkdnlazkcOXrIdevi7FQ"),
    ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567890", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
    ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", "JHMHI8qBe7bk2ZwO5U711o3dV_js"),
    ("mmost://mattermost.example.com/3ccdd113474722377935511fc85d3dd4", "3ccdd113474722377935511fc85d3dd4"),
    ("ntfy://alice:hunter22@ntfy.example.com/oncall-alice", "hunter22"),
    ("pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi", "azGDORePK8gMaC0QOYAMyEEuzJnyUi"),
    ("twilio://AC735c307c62944b5a66ab1ee0a8f4a3ab:f0e6b9a1b2c3d4e5f6a7b8c9d0e1f2a3@15551234567/15557654321",
     "f0e6b9a1b2c3d4e5f6a7b8c9d0e1f2a3"),
    ("vonage://bc1451bd:a8ha1d8fbbfc2e4f@15551231234/15559876543", "a8ha1d8fbbfc2e4f"),
    ("workflows://prod-01.westus.logic.azure.com:443/abcd1234/efgh5678?signature=YZ9sig0secret", "YZ9sig0secret"),
]  # fmt: skip


@pytest.mark.parametrize("url, secret", SERVICES)
def test_apprise_urls_of_the_services_teams_use_are_accepted_and_shown_without_their_secret(url, secret):
    shown = check_apprise_url(url)
    assert secret not in shown
    assert shown.split("://", 1)[0] == check_apprise_url(url).split("://", 1)[0]  # the service stays visible
    # Others see the service only.
    [others] = shown_channels({"sms": shown}, full=False).values()
    assert others == f"{shown.split('://', 1)[0]}://****************"


@pytest.mark.parametrize(
    "url, text",
    [
        ("nosuch://token", 'Apprise does not support "nosuch://" URLs.'),
        ("just-text", "Enter an Apprise URL, such as tgram://bottoken/ChatID."),
        ("slack://", 'Apprise cannot use this "slack://" URL: check its parts against the service\'s URL format.'),
        ("tgram://nobot", 'Apprise cannot use this "tgram://" URL: check its parts against the service\'s URL format.'),
        ("mailto://user:pass@example.com", ('"mailto://" URLs are not accepted: they do not send over HTTP, where '
                                           "outgoing addresses are checked.")),
        ("syslog://", ('"syslog://" URLs are not accepted: they do not send over HTTP, where outgoing addresses '
                      "are checked.")),
        ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js?template=/etc/passwd",
         'The "template" parameter is not accepted: it reads a file on the server.'),
        ("vapid://user@example.com/ep?keyfile=/etc/ssl/private/key.pem",
         'The "keyfile" parameter is not accepted: it reads a file on the server.'),
        ("https://example.com/hook", ('Apprise cannot use this "https://" URL: check its parts against the '
                                     "service's URL format.")),
        ("https://discord.com/api/webhooks/4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js?template=/etc/passwd",
         'The "template" parameter is not accepted: it reads a file on the server.'),
        ("slack://T1/B2/C3 4", "A URL may not contain spaces or control characters."),
        ("slack://T1/B2/\x00", "A URL may not contain spaces or control characters."),
        ("json://example.com/" + "a" * 2048, "Ensure this URL has no more than 2048 characters."),
    ],
)  # fmt: skip
def test_apprise_urls_that_cannot_be_used_are_refused_with_a_reason(url, text):
    with pytest.raises(InvalidAddress) as refused:
        check_apprise_url(url)
    assert str(refused.value) == text


def test_a_template_that_is_an_id_not_a_file_is_accepted():
    assert check_apprise_url("sendgrid://abcd:noreply@example.com/to@example.com?template=d-1234")


def _sends_through_requests(plugin_class) -> bool:
    """Whether a plugin's code (its module or package, and its bases') calls ``requests``."""
    files: set[Path] = set()
    for cls in plugin_class.__mro__:
        if not cls.__module__.startswith("apprise.plugins") or cls.__module__ == "apprise.plugins.base":
            continue
        path = Path(importlib.import_module(cls.__module__).__file__)
        files.update(path.parent.glob("*.py") if path.name in ("__init__.py", "base.py") else [path])
    call = re.compile(r"requests\.(post|get|put|patch|delete|head|request|Session)\b")
    return any(call.search(path.read_text()) for path in files)


def test_every_apprise_service_that_does_not_send_through_requests_is_refused():
    """Checked against the Apprise installed, so a new version's socket services are not missed."""
    plugins = NotificationManager()
    not_http = {schema for schema in plugins.schemas() if not _sends_through_requests(plugins[schema])}
    assert not_http <= NOT_HTTP_SCHEMES, sorted(not_http - NOT_HTTP_SCHEMES)


def test_every_apprise_parameter_that_names_a_file_is_refused():
    url_parts = {"path", "fullpath", "prefix", "workflow_path", "attach-as", "filename", "file_url"}
    plugins = NotificationManager()
    named_files = {
        key
        for schema in plugins.schemas()
        for key, spec in getattr(plugins[schema], "template_args", {}).items()
        if NAMES_A_FILE.search(str(spec.get("name", "")))
    }
    assert named_files - url_parts <= FILE_PARAMETERS, sorted(named_files - url_parts - FILE_PARAMETERS)


# --- webhook addresses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://hooks.example.com/services/T000/B000/XXXXSECRET", "https://hooks.example.com/****************"),
        ("https://user:pw@hooks.example.com/", "https://hooks.example.com/****************"),
        ("http://alerts.example.com:8080/?token=abc", "http://alerts.example.com:8080/****************"),
        ("https://hooks.example.com", "https://hooks.example.com/"),
        ("https://[2606:4700::1111]:8443/x", "https://[2606:4700::1111]:8443/****************"),
    ],
)
def test_webhook_addresses_are_shown_without_path_query_or_credentials(url, shown):
    assert check_webhook_url(url, OutgoingPolicy()) == shown


@pytest.mark.parametrize(
    "url, text",
    [
        ("ftp://example.com/x", "Enter a valid URL."),
        ("https://", "Enter a valid URL."),
        ("example.com/hook", "Enter a valid URL."),
        ("http://example.com:99999/", "Enter a valid URL."),
        ("http://127.0.0.1:8080/hook", ("This address is not allowed: 127.0.0.1 is a loopback address (not listed in "
                                       "TOCSIN_OUTGOING_ALLOW).")),
        ("http://169.254.169.254/latest/meta-data", ("This address is not allowed: 169.254.169.254 is a link-local "
                                                    "address (not listed in TOCSIN_OUTGOING_ALLOW).")),
        ("http://[::1]/", ("This address is not allowed: ::1 is a loopback address (not listed in "
                          "TOCSIN_OUTGOING_ALLOW).")),
    ],
)  # fmt: skip
def test_webhook_addresses_that_cannot_be_used_are_refused(url, text):
    with pytest.raises(InvalidAddress) as refused:
        check_webhook_url(url, OutgoingPolicy())
    assert str(refused.value) == text


def test_an_internal_webhook_address_is_taken_when_the_allow_list_lists_it():
    policy = OutgoingPolicy.from_setting("10.0.0.0/8, 127.0.0.1")
    assert check_webhook_url("http://10.1.2.3/hook", policy) == "http://10.1.2.3/****************"
    assert check_webhook_url("http://127.0.0.1:9/", policy) == "http://127.0.0.1:9/"


# --- the outgoing-address policy ------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, kind",
    [
        ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
        ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.0.1", "private"), ("fd12::1", "private"),
        ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.251", "multicast"),
        ("100.64.0.1", "reserved"), ("192.0.2.1", "private"), ("240.0.0.1", "reserved"), ("2001:db8::1", "private"),
        # IPv6 forms of internal IPv4 addresses.
        ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("64:ff9b::a9fe:a9fe", "link-local"),
        ("2002:7f00:1::", "loopback"),
    ],
)  # fmt: skip
def test_internal_addresses_are_refused_with_their_kind(address, kind):
    assert OutgoingPolicy().refusal(address) == (
        f"{ipaddress.ip_address(address.split('%')[0])} is a {kind} address (not listed in TOCSIN_OUTGOING_ALLOW)"
    )


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "1.1.1.1"])
def test_public_addresses_are_allowed(address):
    assert OutgoingPolicy().refusal(address) is None


def test_the_allow_list_takes_addresses_and_networks():
    policy = OutgoingPolicy.from_setting(" 10.0.0.0/8,127.0.0.1  fd00::/8 169.254.169.254")
    for allowed in ("10.255.0.1", "127.0.0.1", "fd00::5", "169.254.169.254", "::ffff:10.1.1.1"):
        assert policy.refusal(allowed) is None, allowed
    for refused in ("127.0.0.2", "192.168.1.1", "169.254.0.1", "::1"):
        assert policy.refusal(refused) is not None, refused
    assert OutgoingPolicy.from_setting("").allowed == ()


@pytest.mark.parametrize("setting", ["localhost", "10.0.0.0/33", "10.0.0.1,,nope"])
def test_an_allow_list_with_a_name_or_a_typo_is_an_error(setting):
    with pytest.raises(ValueError, match="TOCSIN_OUTGOING_ALLOW"):
        OutgoingPolicy.from_setting(setting)


# --- the SMTP setting -----------------------------------------------------------------------------


def test_smtp_urls():
    plain = parse_smtp_url("smtp://mail.example.com")
    assert (plain.host, plain.port, plain.security, plain.username, plain.sender) == (
        "mail.example.com", 25, "none", None, "tocsin@mail.example.com",
    )  # fmt: skip
    starttls = parse_smtp_url("smtp://oncall%40example.com:p%40ss@mail.example.com?starttls=true&from=pager@example.com")
    assert (starttls.port, starttls.security, starttls.username, starttls.password, starttls.sender) == (
        587, "starttls", "oncall@example.com", "p@ss", "pager@example.com",
    )  # fmt: skip
    tls = parse_smtp_url("smtps://u:p@mail.example.com:2465")
    assert (tls.port, tls.security) == (2465, "tls")
    for wrong in ("http://mail.example.com", "smtp://", "mail.example.com:25", "smtp://h:notaport"):
        with pytest.raises(ValueError, match="TOCSIN_SMTP_URL"):
            parse_smtp_url(wrong)
