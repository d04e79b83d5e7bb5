"""Policies: "when X is recorded, do Y", declared with the event types they react to.

A policy is a pure function over a unit of work. A tracked process (``adapters.reactions``) reads
a batch of its upstream's events, hands each policy the events of the types it declared, and
commits what the policies changed together with its upstream position, in one transaction:
every event is reacted to exactly once, also across crashes. Adding a reaction is one function
and its event types::

    reactions = Policies()

    @reactions.policy(Inbox.AlertReceived)
    def count(uow, event, context): ...

A batch policy (``@reactions.batch_policy``) gets all its events of a batch at once, in order, so
it can share work between them (ingest renders a batch's templates in one message and reads
every grouping slot in one query). It may take just a prefix of them, returning how many it
took: the batch then ends there, and the rest come in the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.utils import get_topic

EventPolicy = Callable[[Any, Any, Any], None]  # (uow, event, context)
BatchPolicy = Callable[[Any, Sequence[Any], Any], "int | None"]  # (uow, events, context) -> taken


@dataclass(frozen=True)
class Registered:
    function: Callable
    event_types: tuple[type, ...]
    batch: bool

    def reacts_to(self, event: object) -> bool:
        return isinstance(event, self.event_types)


class Policies:
    """A process's policies, in the order they were declared (their order within a batch)."""

    def __init__(self) -> None:
        self.registered: list[Registered] = []

    def policy(self, *event_types: type) -> Callable[[EventPolicy], EventPolicy]:
        """Declare ``function(uow, event, context)`` for each event of ``event_types``."""
        return self._register(event_types, batch=False)

    def batch_policy(self, *event_types: type) -> Callable[[BatchPolicy], BatchPolicy]:
        """Declare ``function(uow, events, context) -> taken`` for a batch's events of ``event_types``."""
        return self._register(event_types, batch=True)

    def _register(self, event_types: tuple[type, ...], batch: bool) -> Callable:
        if not event_types or not all(isinstance(t, type) for t in event_types):
            # A policy without types would never run, and its process would move on regardless.
            raise TypeError("a policy must declare the event types it reacts to")

        def register(function: Callable) -> Callable:
            self.registered.append(Registered(function, tuple(event_types), batch))
            return function

        return register

    def topics(self) -> frozenset[str]:
        """The stored topics of every declared event type: the others are never decoded."""
        return frozenset(get_topic(t) for r in self.registered for t in r.event_types)

    def __bool__(self) -> bool:
        return bool(self.registered)
