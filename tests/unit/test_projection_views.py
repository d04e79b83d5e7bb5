"""A view that handles no event type cannot be defined or run: its position would advance while
it received nothing."""

from __future__ import annotations

from functools import singledispatchmethod
from types import SimpleNamespace

import pytest

from projections.runner import Projection, ProjectionRunner


def test_a_named_view_with_a_plain_apply_is_refused_when_defined():
    with pytest.raises(TypeError, match="handles no event type"):

        class PlainView(Projection):
            name = "plain"
            upstream = "alerting"

            def apply(self, event, cur, position):  # never called: no type is registered
                pass


def test_a_runner_refuses_a_view_that_handles_nothing():
    class Unnamed(Projection):  # no name at definition time, given one later
        upstream = "alerting"

        def apply(self, event, cur, position):
            pass

    view = Unnamed()
    view.name = "unnamed"
    with pytest.raises(TypeError, match="Unnamed handles no event type"):
        ProjectionRunner(db=None, app=SimpleNamespace(name="alerting"), projections=[view])


class Shown:
    pass


class NotShown:
    pass


def test_a_view_with_registered_events_is_handed_exactly_those():
    class Registered(Projection):
        name = "registered"
        upstream = "alerting"

        @singledispatchmethod
        def apply(self, event, cur, position):
            pass

        @apply.register
        def _(self, event: Shown, cur, position):
            pass

    runner = ProjectionRunner(db=None, app=SimpleNamespace(name="alerting"), projections=[Registered()])
    (view,) = runner.projections
    assert view.shows(Shown()) and not view.shows(NotShown())
