"""PostgreSQL recorders that insert events as plain arrays instead of a composite-type array.

The library sends a batch of events as one array of a composite type, which psycopg has to
dump as escaped text (a regular expression over every event's state). Sending four arrays
(ids, versions, topics, states) in binary writes the same rows, under the same table lock and
NOTIFY, for a fraction of the client CPU. Selected with the event store's
``APPLICATION_RECORDER_TOPIC`` / ``PROCESS_RECORDER_TOPIC`` settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresProcessRecorder
from psycopg.sql import SQL, Identifier


class _ArrayInsert:
    def _array_insert_statement(self) -> SQL:
        return SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[])"
            " RETURNING notification_id"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))

    def _insert_stored_events(self, curs, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        self._lock_table(curs)  # commit order = notification order: followers never skip an event
        self._notify_channel(curs)
        curs.execute(
            self._array_insert_statement(),
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
            prepare=True,
        )


class ArrayApplicationRecorder(_ArrayInsert, PostgresApplicationRecorder):
    pass


class ArrayProcessRecorder(_ArrayInsert, PostgresProcessRecorder):
    pass
