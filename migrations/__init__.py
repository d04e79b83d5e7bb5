"""Numbered SQL migrations for the read-model tables, one folder per backend.

Applied in file-name order; each applied file is recorded in ``schema_migrations`` so a
migration runs once. The event tables belong to the event store and are created by
``tocsin migrate`` through the library, not here.
"""

from __future__ import annotations

from importlib import resources

from projections.db import Database

TABLE = "schema_migrations"


def migration_files(dialect: str) -> list[tuple[str, str]]:
    folder = resources.files(__name__).joinpath(dialect)
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, folder.joinpath(name).read_text()) for name in names]


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def apply_migrations(db: Database) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    applied_now = []
    with db.transaction() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        if db.dialect == "postgres":
            # Two processes migrating at once must not both run the same file.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('tocsin-migrations'))")
        done = {row["name"] for row in cur.execute(f"SELECT name FROM {TABLE}").fetchall()}
        for name, script in migration_files(db.dialect):
            if name in done:
                continue
            for statement in _statements(script):
                cur.execute(statement)
            cur.execute(
                f"INSERT INTO {TABLE} (name, applied_at) VALUES (%s, CURRENT_TIMESTAMP)", (name,)
            )
            applied_now.append(name)
    return applied_now


def migrations_applied(db: Database) -> bool:
    """True when every migration file has been applied."""
    try:
        done = {row["name"] for row in db.query(f"SELECT name FROM {TABLE}")}
    except Exception:  # no migrations table yet
        return False
    return {name for name, _ in migration_files(db.dialect)} <= done
