"""Inbound rate limits over HTTP (OnCall reference §1.5), with the counters in memory and in Redis.

Every test runs on SQLite and PostgreSQL and, unless it says otherwise, with the counters in this
process's memory and in a real Redis (each test under its own key prefix, deleted afterwards).
Limits are small so that a few requests reach them; windows are epoch-aligned, so a test that
must not straddle a window boundary first waits for a fresh window when the current one is about
to end.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import require_redis
from tests.integration.conftest import inbound_path, wait_for_groups
from adapters.settings import Settings
from web.ratelimit import EXTENSION, Rate, RateLimiter

INTEGRATION_TEXT = (
    "Rate-limiting has been applied to your account because too many alerts were sent from your "
    "{name} integration. Rate-limiting is activated so you will continue to receive alerts from "
    "other integrations. Read more about rate limits in our docs. "
)
TOTAL_TEXT = (
    "Rate-limiting has been applied to your account because too many alerts were sent from multiple "
    "integrations. Read more about rate limits in our docs. "
)
HEARTBEAT_TEXT = "We received too many heartbeats from integration and had to apply rate limiting."
HOUR = 3600


# --- fixtures: small limits, memory or Redis counters ---------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def counters(request) -> str:
    """Where the limiter keeps its counters; a test may parametrize it ("redis-down")."""
    return request.param


@pytest.fixture
def limits() -> dict:
    """Settings fields; a test may parametrize it with other limits."""
    return {"ratelimit_integration": "3/1h", "ratelimit_total": "5/1h"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def redis_prefix() -> str:
    return f"tocsin-test:{uuid.uuid4().hex}:"


@pytest.fixture
def settings(settings: Settings, counters: str, limits: dict, redis_prefix: str):
    """The shared settings fixture (SQLite or PostgreSQL) with small limits and the chosen counters."""
    if counters == "memory":
        yield replace(settings, redis_url=None, **limits)
    elif counters == "redis-down":
        yield replace(settings, redis_url=f"redis://127.0.0.1:{closed_port()}/0", **limits)
    else:
        import redis

        url = require_redis()
        yield replace(settings, redis_url=url, ratelimit_redis_prefix=redis_prefix, **limits)
        connection = redis.Redis.from_url(url)
        keys = list(connection.scan_iter(match=f"{redis_prefix}*"))
        if keys:
            connection.delete(*keys)
        connection.close()


@pytest.fixture
def app(app):
    yield app
    app.extensions[EXTENSION].close()


@pytest.fixture
def integrations(make_integration) -> list[dict]:
    return [make_integration("formatted_webhook", name=name) for name in ("Checkout", "Billing", "Search")]


# --- helpers ------------------------------------------------------------------------------------


def fresh_window(period: float, margin: float = 20.0) -> None:
    """Wait for the next window when the current one ends within ``margin`` seconds."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.05)


def post_alert(client, integration: dict, uid: str = "same"):
    return client.post(inbound_path(integration), json={"alert_uid": uid, "title": "Disk full"})


def assert_accepted(response) -> None:
    assert (response.status_code, response.get_json()) == (200, "Ok."), response.get_data(as_text=True)


def assert_refused(response, text: str, max_wait: int) -> None:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == text
    assert 1 <= int(response.headers["Retry-After"]) <= max_wait


def metric(client, name: str, **labels: str) -> float | None:
    response = client.get("/metrics")
    assert response.status_code == 200
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in response.get_data(as_text=True).splitlines():
        if line.rsplit(" ", 1)[0] == wanted:
            return float(line.rsplit(" ", 1)[1])
    return None


# --- tests --------------------------------------------------------------------------------------


def test_the_request_after_the_integration_limit_is_refused_with_oncalls_text(client, integrations):
    checkout = integrations[0]
    fresh_window(HOUR)
    for _ in range(5):  # the integration's page is not rate-limited (as in OnCall: POST only)
        assert client.get(inbound_path(checkout)).status_code == 200

    for _ in range(3):
        assert_accepted(post_alert(client, checkout))
    refused = post_alert(client, checkout)

    assert_refused(refused, INTEGRATION_TEXT.format(name="Checkout"), HOUR)
    assert int(refused.headers["Retry-After"]) == pytest.approx(HOUR - time.time() % HOUR, abs=2)  # window end
    # Only the accepted requests became alerts.
    wait_for_groups(client, checkout["id"], 1, alerts_count=3)
    time.sleep(0.3)
    assert client.get(f"/api/v1/alert_groups/?integration_id={checkout['id']}").get_json()["results"][0][
        "alerts_count"
    ] == 3


def test_other_integrations_pass_until_the_total_limit(client, integrations):
    checkout, billing, search = integrations
    fresh_window(HOUR)
    for _ in range(3):
        assert_accepted(post_alert(client, checkout))
    assert_refused(post_alert(client, checkout), INTEGRATION_TEXT.format(name="Checkout"), HOUR)

    # The refused request was not counted against the total (3 of 5 used): two more pass.
    assert_accepted(post_alert(client, billing))
    assert_accepted(post_alert(client, billing))
    assert_refused(post_alert(client, billing), TOTAL_TEXT, HOUR)
    assert_refused(post_alert(client, search), TOTAL_TEXT, HOUR)
    # A request refused by the total has used its integration budget (3 of 3 for Billing).
    assert_refused(post_alert(client, billing), INTEGRATION_TEXT.format(name="Billing"), HOUR)
    assert_refused(post_alert(client, checkout), INTEGRATION_TEXT.format(name="Checkout"), HOUR)


def test_heartbeats_share_the_integration_counters(client, integrations):
    checkout = integrations[0]
    heartbeat = inbound_path(checkout) + "heartbeat/"
    fresh_window(HOUR)

    assert_accepted(post_alert(client, checkout))
    assert client.get(heartbeat).status_code == 200
    assert client.post(heartbeat).status_code == 200

    assert_refused(client.get(heartbeat), HEARTBEAT_TEXT, HOUR)
    assert_refused(client.post(heartbeat), HEARTBEAT_TEXT, HOUR)
    assert_refused(post_alert(client, checkout), INTEGRATION_TEXT.format(name="Checkout"), HOUR)


@pytest.mark.parametrize("limits", [{"ratelimit_integration": "10/1h", "ratelimit_total": "100/1h"}])
def test_concurrent_requests_never_exceed_the_limit(app, integrations):
    path = inbound_path(integrations[0])
    start = threading.Barrier(25)

    def post(_) -> int:
        sender = app.test_client()
        start.wait()
        return sender.post(path, json={"alert_uid": "burst"}).status_code

    fresh_window(HOUR)
    with ThreadPoolExecutor(25) as pool:
        codes = list(pool.map(post, range(25)))

    assert sorted(codes) == [200] * 10 + [429] * 15


@pytest.mark.parametrize("limits", [{"ratelimit_integration": "2/2s", "ratelimit_total": "100/2s"}])
def test_the_window_resets(client, integrations):
    checkout = integrations[0]
    fresh_window(2, margin=2)  # start at a window's beginning: the three requests share it

    assert_accepted(post_alert(client, checkout))
    assert_accepted(post_alert(client, checkout))
    refused = post_alert(client, checkout)
    assert_refused(refused, INTEGRATION_TEXT.format(name="Checkout"), 2)

    time.sleep(int(refused.headers["Retry-After"]))  # rounded up: the window is over
    assert_accepted(post_alert(client, checkout))
    assert_accepted(post_alert(client, checkout))


def test_refusals_show_on_the_page_and_in_metrics(client, integrations):
    checkout, billing, search = integrations
    fresh_window(HOUR)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    for _ in range(5):
        post_alert(client, checkout)  # 3 accepted, 2 refused by the integration limit
    for _ in range(3):
        post_alert(client, billing)  # 2 accepted, 1 refused by the total limit

    page = client.get(inbound_path(checkout)).get_data(as_text=True)
    prefix = "2 requests refused by the rate limit since "
    assert prefix in page
    since = datetime.strptime(page.split(prefix)[1][:20], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert before <= since <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert "(limits: 3 per hour for this integration, 5 per hour for all integrations)." in page
    assert "1 request refused by the rate limit since " in client.get(inbound_path(billing)).get_data(as_text=True)
    assert "refused" not in client.get(inbound_path(search)).get_data(as_text=True)

    response = client.get("/metrics")
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE tocsin_inbound_refused_total counter" in response.get_data(as_text=True)
    expected = {
        (checkout["id"], "integration"): 2, (checkout["id"], "total"): 0,
        (billing["id"], "integration"): 0, (billing["id"], "total"): 1,
        (search["id"], "integration"): 0, (search["id"], "total"): 0,
    }  # fmt: skip
    for (integration_id, limit), count in expected.items():
        assert metric(client, "tocsin_inbound_refused_total", integration=integration_id, limit=limit) == count
    accepted = {checkout["id"]: 3, billing["id"]: 2, search["id"]: 0}
    for integration_id, count in accepted.items():
        assert metric(client, "tocsin_inbound_accepted_total", integration=integration_id) == count
    assert metric(client, "tocsin_ratelimit_store_up") == 1


@pytest.mark.parametrize("counters", ["redis"])
def test_redis_keeps_windows_that_expire_and_counters_every_process_shares(app, client, integrations, settings):
    import redis

    checkout = integrations[0]
    fresh_window(HOUR)
    for _ in range(4):
        post_alert(client, checkout)

    connection = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        prefix = settings.ratelimit_redis_prefix
        start = int(time.time()) // HOUR * HOUR
        window = f"{prefix}w:integration:{HOUR}:{start}:{checkout['id']}"
        assert connection.get(window) == "4"
        assert 0 < connection.ttl(window) <= HOUR + 1
        assert connection.get(f"{prefix}w:total:{HOUR}:{start}") == "3"
        assert 0 < connection.ttl(f"{prefix}w:total:{HOUR}:{start}") <= HOUR + 1
        assert connection.hget(f"{prefix}refused:integration", checkout["id"]) == "1"
    finally:
        connection.close()

    # A second web process (another app on the same settings) sees the same windows.
    from web import create_app

    other = create_app(app.extensions["tocsin"])
    try:
        response = other.test_client().post(inbound_path(checkout), json={"alert_uid": "x"})
        assert_refused(response, INTEGRATION_TEXT.format(name="Checkout"), HOUR)
    finally:
        other.extensions[EXTENSION].close()


@pytest.mark.parametrize("counters", ["redis-down"])
@pytest.mark.parametrize("limits", [{"ratelimit_integration": "1/1h", "ratelimit_total": "1/1h"}])
def test_requests_are_accepted_when_redis_is_down(client, integrations, caplog):
    checkout, billing, _ = integrations
    caplog.set_level(logging.WARNING, logger="web.ratelimit")

    for _ in range(3):
        assert_accepted(post_alert(client, checkout))
    assert client.get(inbound_path(billing) + "heartbeat/").status_code == 200
    assert_accepted(post_alert(client, billing))

    wait_for_groups(client, checkout["id"], 1, alerts_count=3)
    assert client.get(inbound_path(checkout)).status_code == 200  # the page, without the note
    assert metric(client, "tocsin_ratelimit_store_up") == 0
    warnings = [r for r in caplog.records if r.name == "web.ratelimit"]
    assert len(warnings) == 1  # at most one a minute
    assert "accepting requests without limits" in warnings[0].getMessage()


def test_limits_default_to_oncalls_and_come_from_the_environment():
    defaults = Settings.from_env({})
    assert (defaults.ratelimit_integration, defaults.ratelimit_total) == ("300/5m", "900/5m")
    limiter = RateLimiter(defaults)
    assert (limiter.per_integration.count, limiter.per_integration.period) == (300, 300)
    assert (limiter.total.count, limiter.total.period) == (900, 300)

    custom = Settings.from_env({"TOCSIN_RATELIMIT_INTEGRATION": "10/30s", "TOCSIN_RATELIMIT_TOTAL": "1000/h"})
    limiter = RateLimiter(custom)
    assert (limiter.per_integration.count, limiter.per_integration.period) == (10, 30)
    assert (limiter.total.count, limiter.total.period) == (1000, 3600)
    assert Rate.parse("2/2s", "X").describe() == "2 per 2 seconds"

    for bad in ("lots", "10/5x", "10/0m", "/5m"):
        with pytest.raises(ValueError, match="TOCSIN_RATELIMIT_TOTAL"):
            RateLimiter(replace(custom, ratelimit_total=bad))
