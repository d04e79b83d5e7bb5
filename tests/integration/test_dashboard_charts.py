"""The insights chart's geometry and the durations people read (pure functions)."""

from __future__ import annotations

import pytest

from web.dashboard.charts import human_duration, nice_ceiling, stacked_bars


@pytest.mark.parametrize("value, ceiling", [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (101, 200), (4999, 5000)])
def test_the_axis_top_is_a_round_number_at_or_above_the_peak(value, ceiling):
    assert nice_ceiling(value) == ceiling


def test_each_day_is_one_bar_stacked_by_state_and_scaled_to_the_peak():
    days = ["2026-11-29", "2026-11-30", "2026-12-01"]
    per_day = {
        "2026-11-29": {"firing": 0, "acknowledged": 0, "silenced": 0, "resolved": 0},
        "2026-11-30": {"firing": 2, "acknowledged": 0, "silenced": 0, "resolved": 3},
        "2026-12-01": {"firing": 10, "acknowledged": 0, "silenced": 0, "resolved": 0},
    }
    chart = stacked_bars(days, per_day, width=300, height=200)
    assert [(bar.day, bar.state, bar.count) for bar in chart.bars] == [
        ("2026-11-30", "firing", 2), ("2026-11-30", "resolved", 3), ("2026-12-01", "firing", 10),
    ], "empty segments are not drawn; firing at the bottom"
    plot_height = chart.plot_bottom - chart.y_ticks[-1].y
    tallest = next(bar for bar in chart.bars if bar.count == 10)
    assert tallest.height == pytest.approx(plot_height), "the busiest day reaches the top (peak 10)"
    lower, upper = chart.bars[0], chart.bars[1]
    assert lower.y + lower.height == pytest.approx(chart.plot_bottom, abs=0.1)
    assert upper.y + upper.height == pytest.approx(lower.y, abs=0.1), "segments stack without gaps"
    assert [tick.label for tick in chart.x_ticks] == ["11-29", "11-30", "12-01"]
    assert all(chart.plot_left <= bar.x and bar.x + bar.width <= chart.plot_right for bar in chart.bars)


def test_ninety_days_get_a_readable_number_of_date_labels():
    days = [f"2026-{month:02d}-{day:02d}" for month in (9, 10, 11) for day in range(1, 31)]
    chart = stacked_bars(days, {day: {"firing": 1} for day in days})
    assert 6 <= len(chart.x_ticks) <= 12


@pytest.mark.parametrize(
    "seconds, text",
    [(None, "–"), (0, "0 s"), (59.6, "1 min"), (95, "1 min 35 s"), (3600, "1 h"), (3720, "1 h 2 min"),
     (86400 * 3 + 3600, "3 d 1 h")],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert human_duration(seconds) == text
