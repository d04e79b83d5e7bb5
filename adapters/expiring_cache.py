"""A small, bounded cache of lookups that may go stale for a few seconds (token checks)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class ExpiringCache:
    """Entries live ``ttl`` seconds; at most ``maxsize`` are kept, oldest out first.

    Misses are cached too (so a flood of bad tokens costs one query each per ``ttl``), and the
    bound keeps such a flood from growing memory.
    """

    def __init__(self, ttl: float = 5.0, maxsize: int = 10_000):
        self.ttl = ttl
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_load(self, key: Hashable, load: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        with self._lock:
            self._entries[key] = (now + self.ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
