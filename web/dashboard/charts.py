"""Chart geometry for the insights page, drawn as SVG by the templates (autoescaped there)."""

from __future__ import annotations

from dataclasses import dataclass

STATE_ORDER = ("firing", "acknowledged", "silenced", "resolved")
STATE_LABELS = {"firing": "Firing", "acknowledged": "Acknowledged", "silenced": "Silenced", "resolved": "Resolved"}


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    state: str
    day: str
    count: int


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class StackedBars:
    width: int
    height: int
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    plot_left: float
    plot_bottom: float
    plot_right: float


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above ``value`` (so axis ticks are round numbers)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def stacked_bars(days: list[str], per_day: dict[str, dict[str, int]], width: int = 760, height: int = 260) -> StackedBars:
    """One bar per day, its segments the groups started that day by their current state."""
    left, right, top, bottom = 44.0, 8.0, 10.0, 28.0
    plot_width, plot_height = width - left - right, height - top - bottom
    peak = nice_ceiling(max([sum(per_day[d].values()) for d in days] + [1]))
    slot = plot_width / max(len(days), 1)
    bar_width = max(slot * 0.7, 1.0)
    bars, x_ticks = [], []
    label_every = max(1, round(len(days) / 8))  # at most about eight date labels
    for index, day in enumerate(days):
        x = left + index * slot + (slot - bar_width) / 2
        y = top + plot_height
        for state in STATE_ORDER:
            count = per_day[day].get(state, 0)
            if not count:
                continue
            h = plot_height * count / peak
            y -= h
            bars.append(Bar(round(x, 1), round(y, 1), round(bar_width, 1), round(h, 1), state, day, count))
        if index % label_every == 0:
            x_ticks.append(Tick(round(x + bar_width / 2, 1), height - 8, day[5:]))
    y_ticks = [
        Tick(left - 6, round(top + plot_height * (1 - fraction), 1), str(round(peak * fraction)))
        for fraction in (0, 0.25, 0.5, 0.75, 1)
        if float(peak * fraction).is_integer()
    ]
    return StackedBars(width, height, bars, x_ticks, y_ticks, left, top + plot_height, width - right)


def human_duration(seconds: float | None) -> str:
    """``95`` -> ``1 min 35 s``; for reading, not parsing."""
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
