"""On-call schedules: shifts and rotations, the final schedule (who is on call), iCal in and out.

Pure: times in, times out. Users come in as a ``Directory`` (who exists, and who may be on
call: viewers may not), so the same schedule gives the same answer for any past instant when
given the users and the schedule version of that instant.
"""

from domain.schedules.ical import (
    IcalError,
    ImportedCalendar,
    export_calendar,
    export_calendars,
    parse_calendar,
)
from domain.schedules.resolution import (
    COVERAGE_HORIZON,
    MAX_WINDOW,
    Coverage,
    Directory,
    FinalShift,
    Schedule,
    ScheduleUser,
    Segment,
    coverage,
    final_segments,
    final_shifts,
    on_call_at,
    resolve,
)
from domain.schedules.shifts import (
    DAILY,
    FREQUENCIES,
    HOURLY,
    MONTHLY,
    OVERRIDE,
    RECURRENT_EVENT,
    ROLLING_USERS,
    SHIFT_TYPES,
    SINGLE_EVENT,
    WEEKDAYS,
    WEEKLY,
    Occurrence,
    Shift,
    ShiftError,
)

__all__ = [
    "COVERAGE_HORIZON", "DAILY", "FREQUENCIES", "HOURLY", "MAX_WINDOW", "MONTHLY", "OVERRIDE",
    "RECURRENT_EVENT", "ROLLING_USERS", "SHIFT_TYPES", "SINGLE_EVENT", "WEEKDAYS", "WEEKLY",
    "Coverage", "Directory", "FinalShift", "IcalError", "ImportedCalendar", "Occurrence",
    "Schedule", "ScheduleUser", "Segment", "Shift", "ShiftError", "coverage", "export_calendar",
    "export_calendars", "final_segments", "final_shifts", "on_call_at", "parse_calendar", "resolve",
]
