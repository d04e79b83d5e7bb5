#!/usr/bin/env python3
"""Schedule engine benchmark (pure computation, no store).

Plain script, not a pytest test:

    python tests/benchmarks/bench_schedules.py [--rounds 20] [--schedules 100]

Times, each as the median and p90 of ``--rounds`` runs:

* ``final_shifts`` for one year of a 10-person weekly rotation (Europe/Berlin, so both
  daylight-saving changes are in it) with 50 overrides, and the same year exported as iCal;
* ``on_call_at`` ("on_call_now") for ``--schedules`` such schedules one after the other, as a
  schedule list page asks for them (each schedule: one weekly rotation, a daily second level,
  its overrides);
* the same year read back from the export as an ``ical`` schedule.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from domain.schedules import (
    DAILY,
    OVERRIDE,
    ROLLING_USERS,
    WEEKLY,
    Directory,
    ImportedCalendar,
    Schedule,
    ScheduleUser,
    Shift,
    export_calendar,
    final_shifts,
    on_call_at,
)

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2027, 1, 1, tzinfo=UTC)


def build_schedule(rng: random.Random, users: list[str], index: int, second_level: bool = True) -> Schedule:
    rotation = Shift(
        f"rotation-{index}", ROLLING_USERS, datetime(2025, 12, 29, 9), timedelta(days=7),
        rolling_users=tuple((u,) for u in users), start_rotation_from_user_index=index % len(users),
        frequency=WEEKLY, week_start="MO",
    )
    second = Shift(
        f"second-{index}", ROLLING_USERS, datetime(2025, 12, 29, 18), timedelta(hours=14), level=1,
        rolling_users=tuple((u,) for u in reversed(users)), frequency=DAILY,
    )
    overrides = tuple(
        Shift(f"override-{index}-{n}", OVERRIDE,
              datetime(2026, 1, 1) + timedelta(hours=rng.randrange(0, 364 * 24)),
              timedelta(hours=rng.choice([2, 4, 8, 24, 48])), users=(rng.choice(users),))
        for n in range(50)
    )
    return Schedule("Europe/Berlin", (rotation,) + ((second,) if second_level else ()) + overrides)


def timed(function, rounds: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.9))], result


def report(label: str, median: float, p90: float, extra: str = "") -> None:
    print(f"{label:<58} median {median * 1000:9.2f} ms   p90 {p90 * 1000:9.2f} ms   {extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--schedules", type=int, default=100)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    names = [f"user{n}" for n in range(10)]
    directory = Directory(ScheduleUser(n, n, f"{n}@example.com") for n in names)

    weekly_only = build_schedule(rng, names, 0, second_level=False)
    median, p90, shifts = timed(lambda: final_shifts(weekly_only, YEAR_START, YEAR_END, directory), args.rounds)
    report("final_shifts, 1 year, 10-person weekly rotation, 50 overrides", median, p90, f"{len(shifts)} shifts")

    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    median, p90, exported = timed(lambda: export_calendar(shifts, directory, "bench", stamp), args.rounds)
    report("iCal export of that year", median, p90, f"{len(exported)} bytes")

    imported = Schedule("UTC", calendars=(ImportedCalendar(exported),))
    median, p90, again = timed(lambda: final_shifts(imported, YEAR_START, YEAR_END, directory), max(3, args.rounds // 4))
    report("final_shifts of the re-imported export (ical schedule)", median, p90,
           "identical" if again == shifts else "DIFFERENT")

    schedules = [build_schedule(rng, names, i) for i in range(args.schedules)]
    now = datetime(2026, 7, 15, 12, tzinfo=UTC)
    median, p90, answers = timed(lambda: [on_call_at(s, now, directory) for s in schedules], args.rounds)
    report(f"on_call_now for {args.schedules} schedules (rotation, second level, 50 overrides)", median, p90,
           f"{median / len(schedules) * 1e6:.0f} us per schedule")
    return 0 if again == shifts and all(answers) else 1


if __name__ == "__main__":
    sys.exit(main())
