"""PostgreSQL recorders that append events in one statement, and read many aggregates at once.

The library appends events in a pipelined transaction of six statements (BEGIN, lock timeout,
``LOCK TABLE``, ``NOTIFY``, the insert of one composite-type array, COMMIT). Its Python side costs
about half a millisecond of CPU per append, whatever the number of events, and psycopg dumps
the composite array as escaped text. These recorders create, in ``tocsin migrate``, one
PL/pgSQL function per events table that does the same work (including the tracking row of a
process recorder) and call it with four binary arrays as a single autocommitted statement: the
same rows, the same EXCLUSIVE table lock held until commit (so commit order is notification
order and followers never skip an event) and the same NOTIFY, in one round trip.

Unlike the library's ``POSTGRES_ENABLE_DB_FUNCTIONS`` function, ours takes the table lock.
Selected with the event store's ``APPLICATION_RECORDER_TOPIC`` / ``PROCESS_RECORDER_TOPIC``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresProcessRecorder
from psycopg.sql import SQL, Composed, Identifier, Literal

APPEND_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.{function}(
    ids uuid[], versions bigint[], topics text[], states bytea[],
    tracking_application text, tracking_id bigint, lock_wait text
) RETURNS SETOF bigint LANGUAGE plpgsql AS $append$
BEGIN
    PERFORM set_config('lock_timeout', lock_wait, true);
    {track}
    LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE;
    PERFORM pg_notify({channel}, '');
    RETURN QUERY
        INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(ids, versions, topics, states)
        RETURNING notification_id;
END
$append$
"""

# The library's single-row tracking: the position only moves forward, else IntegrityError.
TRACK = """IF tracking_application IS NOT NULL THEN
        INSERT INTO {schema}.{tracking} (application_name, notification_id)
        VALUES (tracking_application, tracking_id)
        ON CONFLICT (application_name) DO UPDATE SET notification_id = excluded.notification_id
        WHERE {schema}.{tracking}.notification_id < excluded.notification_id;
        IF NOT FOUND THEN
            RAISE unique_violation USING MESSAGE = format(
                'Failed to record tracking for %s %s', tracking_application, tracking_id);
        END IF;
    END IF;"""


class _OneStatementAppend:
    tracking_table_name: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._function_name = f"{self.events_table_name}_append"[:63]
        self._append = SQL(
            "SELECT notification_id FROM {}(%b, %b, %b, %b, %s, %s, %s) AS notification_id"
        ).format(Identifier(self.datastore.schema, self._function_name))
        self.sql_create_statements.append(self._create_append_function())

    def _create_append_function(self) -> Composed:
        schema = Identifier(self.datastore.schema)
        track = SQL("")
        if self.tracking_table_name is not None and self.datastore.single_row_tracking:
            track = SQL(TRACK).format(schema=schema, tracking=Identifier(self.tracking_table_name))
        return SQL(APPEND_FUNCTION).format(
            schema=schema,
            function=Identifier(self._function_name),
            table=Identifier(self.events_table_name),
            channel=Literal(self.channel_name),
            track=track,
        )

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        tracking = kwargs.get("tracking")
        if not stored_events or (tracking is not None and not self.datastore.single_row_tracking):
            return super().insert_events(stored_events, **kwargs)
        params = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
            tracking.application_name if tracking else None,
            tracking.notification_id if tracking else None,
            f"{self.datastore.lock_timeout}s",
        )
        # Autocommit: the call is its own transaction, committed before it returns.
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._append, params, prepare=True)
            return [row["notification_id"] for row in curs.fetchall()]

    def select_events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every event of many aggregates in one round trip (ingest's lookups of a whole batch)."""
        statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table}"
            " WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (list(originator_ids),), prepare=True)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]


class ArrayApplicationRecorder(_OneStatementAppend, PostgresApplicationRecorder):
    pass


class ArrayProcessRecorder(_OneStatementAppend, PostgresProcessRecorder):
    pass
