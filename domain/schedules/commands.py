"""The configuration application's schedule commands: load, decide, save (retried on a
version conflict), each returning the position of what it recorded."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import retry

from domain.schedules.aggregates import (
    OnCallSchedule,
    OnCallShift,
    UserScheduleExport,
    as_of,
)

CONFLICT_RETRY = {"max_attempts": 20, "wait": 0.005, "stall": 0.0}


class ExportTokenExists(Exception):
    """The user already has an active export token (revoke it first)."""


class ScheduleCommands:
    """Mixed into ``Configuration``: schedules and shifts share its (cold) stream."""

    def _saved_position(self, *aggregates) -> int | None:
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    def _live_item(self, aggregate_id: UUID):
        aggregate = self.repository.get(aggregate_id)
        if aggregate.deleted:
            raise AggregateNotFoundError(aggregate_id)
        return aggregate

    def create_schedule(self, type: str, settings: dict, export_token_hash: str, at: datetime,
                        uploads: dict[str, str] | None = None):
        """``uploads``: calendars given as text ("primary", "overrides"), saved with the schedule."""
        schedule = OnCallSchedule(type=type, settings=settings, export_token_hash=export_token_hash, created_at=at)
        for which, text in (uploads or {}).items():
            schedule.calendar_uploaded(which=which, text=text, at=at)
        return schedule, self._saved_position(schedule)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def update_schedule(self, schedule_id: UUID, settings: dict, uploads: dict[str, str] | None = None,
                        at: datetime | None = None) -> int | None:
        schedule: OnCallSchedule = self._live_item(schedule_id)
        schedule.update(settings)
        for which, text in (uploads or {}).items():
            schedule.calendar_uploaded(which=which, text=text, at=at)
        return self._saved_position(schedule)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def delete_schedule(self, schedule_id: UUID, at: datetime) -> int | None:
        schedule: OnCallSchedule = self._live_item(schedule_id)
        schedule.delete(at=at)
        return self._saved_position(schedule)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def record_calendar_fetch(self, schedule_id: UUID, which: str, at: datetime,
                              text: str | None = None, error: str | None = None,
                              url: str | None = None) -> int | None:
        """A fetched copy (``text``) or a failure (``error``) of the calendar at ``url``; None
        when nothing new was recorded, or when the schedule no longer names that URL (a fetch
        still running when the calendar was uploaded instead must not replace the upload)."""
        schedule: OnCallSchedule = self._live_item(schedule_id)
        if url is not None and schedule.settings.get(f"ical_url_{which}") != url:
            return None
        if text is not None:
            schedule.calendar_fetched(which=which, text=text, at=at)
        else:
            schedule.calendar_fetch_failed(which=which, error=error or "unknown error", at=at)
        return self._saved_position(schedule)

    def create_shift(self, spec: dict, at: datetime):
        shift = OnCallShift(spec=spec, created_at=at)
        return shift, self._saved_position(shift)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def update_shift(self, shift_id: UUID, spec: dict) -> int | None:
        shift: OnCallShift = self._live_item(shift_id)
        shift.update(spec)
        return self._saved_position(shift)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def delete_shift(self, shift_id: UUID, at: datetime) -> int | None:
        shift: OnCallShift = self._live_item(shift_id)
        shift.delete(at=at)
        return self._saved_position(shift)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def issue_user_export_token(self, user_id: str, token_hash: str, at: datetime) -> tuple[UserScheduleExport, int]:
        """A new export token for ``user_id`` (public id); ``ExportTokenExists`` if one is active."""
        try:
            export: UserScheduleExport = self.repository.get(UserScheduleExport.create_id(user_id))
        except AggregateNotFoundError:
            export = UserScheduleExport(user_id=user_id, token_hash=token_hash, at=at)
        else:
            if export.active:
                raise ExportTokenExists(user_id)
            export.reissue(token_hash=token_hash, at=at)
        return export, self._saved_position(export)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def revoke_user_export_token(self, user_id: str, at: datetime) -> int | None:
        """Revoke the user's active token; ``AggregateNotFoundError`` if there is none."""
        export_id = UserScheduleExport.create_id(user_id)
        export: UserScheduleExport = self.repository.get(export_id)
        if not export.active:
            raise AggregateNotFoundError(export_id)
        export.revoke(at=at)
        return self._saved_position(export)

    def as_of(self, aggregate_id: UUID, moment: datetime):
        """Any configuration aggregate as its events up to ``moment`` left it (None before it
        existed): the log's answer for a past instant."""
        return as_of(self.events.get(aggregate_id), moment)
