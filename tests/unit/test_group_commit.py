"""The group committer during an outage: requests fail at once instead of waiting out the store,
and an entry whose request gave up before its batch started is never written."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from adapters.group_commit import GroupCommitter, InboxUnavailable


class SlowInbox:
    """Saves only when released; records what it saved."""

    def __init__(self):
        self.release = threading.Event()
        self.saving = threading.Event()
        self.saved: list[str] = []

    def save(self, *entries):
        self.saving.set()
        self.release.wait(10)
        self.saved.extend(entry.id for entry in entries)
        return [
            SimpleNamespace(domain_event=SimpleNamespace(originator_id=entry.id), notification=SimpleNamespace(id=n))
            for n, entry in enumerate(entries, 1)
        ]


def entry(name: str):
    return SimpleNamespace(id=name)


def test_requests_fail_at_once_while_the_database_is_unreachable():
    inbox = SlowInbox()
    committer = GroupCommitter(inbox, reachable=lambda: False)
    try:
        began = time.monotonic()
        with pytest.raises(InboxUnavailable, match="unreachable"):
            committer.submit(entry("a"))
        assert time.monotonic() - began < 0.05
        assert inbox.saved == []
    finally:
        committer.close()


def test_an_outage_noticed_while_waiting_answers_within_moments_and_drops_unstarted_entries():
    inbox = SlowInbox()
    reachable = threading.Event()
    reachable.set()
    committer = GroupCommitter(inbox, reachable=reachable.is_set)
    outcomes: dict[str, object] = {}

    def submit(name: str) -> None:
        began = time.monotonic()
        try:
            outcomes[name] = committer.submit(entry(name))
        except InboxUnavailable:
            outcomes[name] = ("unavailable", time.monotonic() - began)

    try:
        first = threading.Thread(target=submit, args=("in-flight",))
        first.start()
        assert inbox.saving.wait(5)  # its batch is being written (the store hangs)
        second = threading.Thread(target=submit, args=("queued",))
        second.start()
        time.sleep(0.05)
        reachable.clear()  # the probe notices the outage
        first.join(2)
        second.join(2)
        assert outcomes["in-flight"][0] == "unavailable" and outcomes["in-flight"][1] < 2.0
        assert outcomes["queued"][0] == "unavailable"
        inbox.release.set()  # the store answers after all: only the batch already started is written
        time.sleep(0.2)
        assert inbox.saved == ["in-flight"]
    finally:
        inbox.release.set()
        committer.close()


def test_commits_answer_with_their_position_while_reachable():
    inbox = SlowInbox()
    inbox.release.set()
    committer = GroupCommitter(inbox)
    try:
        assert committer.submit(entry("a")) == 1
    finally:
        committer.close()
