"""The token caches: stale for at most a few seconds, and bounded under a flood of bad tokens."""

import time

from adapters.expiring_cache import ExpiringCache


def test_a_cached_answer_is_reused_until_it_expires():
    cache = ExpiringCache(ttl=0.05)
    loads = []
    load = lambda: loads.append(1) or len(loads)  # noqa: E731
    assert cache.get_or_load("t", load) == 1
    assert cache.get_or_load("t", load) == 1
    time.sleep(0.06)
    assert cache.get_or_load("t", load) == 2


def test_misses_are_cached_and_the_cache_stays_bounded():
    cache = ExpiringCache(ttl=60, maxsize=100)
    loads = []
    for i in range(10_000):  # a flood of unknown tokens
        cache.get_or_load(f"bad-{i}", lambda: loads.append(1))
    cache.get_or_load("bad-9999", lambda: loads.append(1))
    assert len(loads) == 10_000  # the newest miss was answered from the cache
    assert len(cache._entries) == 100
