"""The ``tocsin`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

from adapters.settings import Settings
from domain.configuration import ROLES
from domain.ids import random_token
from migrations import apply_migrations, migrations_applied
from tocsin.runtime import Runtime

log = logging.getLogger("tocsin")

DEFAULT_WEB_NICE = 10  # how much lower than the other processes `tocsin web` runs (0: the same)


class NotMigrated(SystemExit):
    pass


def _runtime() -> Runtime:
    """A runtime for a one-off command; the embedded database migrates itself on first use."""
    settings = Settings.from_env()
    if settings.backend == "sqlite":
        migrate(settings)
    runtime = Runtime(settings)
    if not migrations_applied(runtime.db):
        runtime.close()
        raise NotMigrated("The database has no Tocsin tables yet: run `tocsin migrate` first.")
    return runtime


def _listening(settings: Settings, host: str | None, port: int | None) -> Settings:
    """Where the server listens; the public base URL follows it unless TOCSIN_BASE_URL is set."""
    host, port = host or settings.host, port or settings.port
    base_url = os.environ.get("TOCSIN_BASE_URL") or f"http://{host}:{port}"
    return replace(settings, host=host, port=port, base_url=base_url.rstrip("/"))


def migrate(settings: Settings) -> list[str]:
    """Create the event tables and apply read-model migrations (run once per deploy)."""
    if settings.backend == "postgres":
        import psycopg
        from psycopg import sql

        with psycopg.connect(settings.postgres_conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(settings.database_schema)))
    runtime = Runtime(settings, create_tables=True)
    try:
        return apply_migrations(runtime.db)
    finally:
        runtime.close()


def cmd_migrate(args) -> int:
    applied = migrate(Settings.from_env())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


class CommandError(Exception):
    """A command cannot do what was asked; the message says why (exit status 1)."""


def token_user(runtime: Runtime, username: str, role: str | None, create: bool) -> dict:
    """The live user a new token belongs to.

    ``create``: the older ``token create --name NAME --role ROLE`` form, where the token's name is
    also its user's. That user is used if it exists (``role``, if given, must be its role: the
    token acts with its user's role) and created with ``role`` (default viewer) if not.
    """
    from domain.users import DEFAULT_TIMEZONE, NameTaken
    from projections.users import user_by_username

    user = user_by_username(runtime.db, username)
    if user is None and create:
        try:
            _, position = runtime.config.create_user(
                username=username, email=None, role=role or "viewer", timezone=DEFAULT_TIMEZONE, team_ids=[],
                at=datetime.now(UTC),
            )
        except NameTaken:  # created meanwhile by another command: use it
            position = runtime.config.recorder.max_notification_id()
        runtime.wait_for("config", position)
        user = user_by_username(runtime.db, username)
    if user is None:
        raise CommandError(f"no user {_printable(username)!r}: create it with `tocsin user create` first")
    if role is not None and role != user["role"]:
        raise CommandError(
            f"user {_printable(user['username'])!r} is {_article(user['role'])}; a token acts with its user's role: "
            "leave out --role, or change the user's role"
        )
    return user


def _article(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def create_token(runtime: Runtime, name: str, role: str | None = None, username: str | None = None) -> str:
    """A new API token (the secret, shown once) for the user ``username`` or, if None, for the
    user named ``name``, created with ``role`` if there is none (see ``token_user``)."""
    return issue_token(runtime, name, token_user(runtime, username or name, role, create=username is None))


def issue_token(runtime: Runtime, name: str, user: dict) -> str:
    token = random_token(40)
    position = runtime.config.create_api_token(
        name, user["role"], token, at=datetime.now(UTC), user_id=UUID(user["uuid"])
    )
    runtime.wait_for("config", position)  # projects configuration here, server running or not
    return token


def cmd_token_create(args) -> int:
    if args.user is None and args.name is None:
        print("give --user USERNAME (or --name NAME, for a user of that name)", file=sys.stderr)
        return 2
    if args.user is not None and args.role is not None:
        print("--role goes with --name only: a token acts with its user's role", file=sys.stderr)
        return 2
    name = args.name if args.name is not None else args.user
    runtime = _runtime()
    try:
        user = token_user(runtime, args.user or name, args.role, create=args.user is None)
        token = issue_token(runtime, name, user)
    except CommandError as refused:
        print(refused, file=sys.stderr)
        return 1
    finally:
        runtime.close()
    print(f"API token '{_printable(name)}' of user {user['id']} '{_printable(user['username'])}' ({user['role']});"
          " it is shown only once:")
    print(token)
    return 0


def _printable(text: str) -> str:
    """Names come from the command line: show control characters escaped, not interpreted."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def cmd_token_list(args) -> int:
    from projections.api_tokens import api_tokens_listing

    runtime = _runtime()
    try:
        tokens = api_tokens_listing(runtime.db)
    finally:
        runtime.close()
    rows = [("ID", "NAME", "ROLE", "CREATED", "REVOKED")]
    rows += [(t["id"], _printable(t["name"]), t["role"], t["created_at"], t["revoked_at"] or "-") for t in tokens]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]))
    return 0


def find_tokens(tokens: list[dict], ref: str) -> list[dict]:
    """The tokens ``ref`` names: its id (``K...``); else the valid tokens with exactly that name;
    else the valid tokens whose name starts with it."""
    by_id = [t for t in tokens if t["id"] == ref.strip().upper()]
    if by_id:
        return by_id
    valid = [t for t in tokens if t["revoked_at"] is None]
    return [t for t in valid if t["name"] == ref] or [t for t in valid if t["name"].startswith(ref)]


def cmd_token_revoke(args) -> int:
    from projections.api_tokens import api_tokens_listing
    from web.api import TOKEN_CACHE_SECONDS

    if not args.token.strip():
        print("give the token's id or name", file=sys.stderr)
        return 2
    runtime = _runtime()
    try:
        matches = find_tokens(api_tokens_listing(runtime.db), args.token)
        if not matches:
            print(f"no valid API token has the id or a name starting with {_printable(args.token)!r}", file=sys.stderr)
            return 1
        if len(matches) > 1:
            names = ", ".join(f"{t['id']} ({_printable(t['name'])})" for t in matches)
            print(f"{_printable(args.token)!r} matches {len(matches)} tokens: {names}; give the id", file=sys.stderr)
            return 1
        (token,) = matches
        described = f"API token {token['id']} '{_printable(token['name'])}' ({token['role']})"
        position = runtime.config.revoke_api_token(UUID(token["uuid"]), at=datetime.now(UTC))
        if position is None:
            print(f"{described} was already revoked")
            return 0
        runtime.wait_for("config", position)  # the read model refuses it once this returns
        print(f"Revoked {described}; a running server refuses it within {TOKEN_CACHE_SECONDS:g} seconds.")
    finally:
        runtime.close()
    return 0


def _validated(schema, **fields) -> dict | None:
    """The options given, validated as the API validates a body; None (refusals printed) if not."""
    from marshmallow import ValidationError

    try:
        return schema.load({name: value for name, value in fields.items() if value is not None})
    except ValidationError as invalid:
        print(_refusals(invalid.messages), file=sys.stderr)
        return None


def _refusals(messages: dict) -> str:
    """A schema's field errors, one ``field: message`` per line."""
    return "\n".join(
        f"{field}: {' '.join(map(str, errors.values() if isinstance(errors, dict) else errors))}"
        for field, errors in messages.items()
    )


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]))


def cmd_user_create(args) -> int:
    """Create a user, validated as the API validates one."""

    from domain.users import DEFAULT_TIMEZONE, NameTaken
    from projections.users import team_by_id, team_by_name, user_by_username
    from web.api.users import UserWriteSchema

    data = _validated(
        UserWriteSchema(), username=args.username, email=args.email, role=args.role, timezone=args.timezone
    )
    if data is None:
        return 2
    runtime = _runtime()
    try:
        teams = [team_by_id(runtime.db, ref.strip().upper()) or team_by_name(runtime.db, ref) for ref in args.team]
        unknown = [ref for ref, team in zip(args.team, teams) if team is None]
        if unknown:
            print(f"no team {', '.join(repr(_printable(ref)) for ref in unknown)}", file=sys.stderr)
            return 1
        try:
            user, position = runtime.config.create_user(
                username=data["username"], email=data.get("email"), role=data.get("role", "viewer"),
                timezone=data.get("timezone", DEFAULT_TIMEZONE), team_ids=[UUID(team["uuid"]) for team in teams],
                at=datetime.now(UTC),
            )
        except NameTaken as taken:
            print(f"{taken.field}: {taken}", file=sys.stderr)
            return 1
        runtime.wait_for("config", position)
        row = user_by_username(runtime.db, data["username"])
    finally:
        runtime.close()
    print(f"User {row['id']} '{_printable(row['username'])}' ({row['role']}) created;"
          f" a token for it: tocsin token create --user {_printable(row['username'])!r}")  # fmt: skip
    return 0


def cmd_user_list(args) -> int:
    from projections.users import users_page

    runtime = _runtime()
    try:
        users = users_page(runtime.db, {}, 1, 2**31 - 1).rows
    finally:
        runtime.close()
    rows = [("ID", "USERNAME", "ROLE", "EMAIL", "TIMEZONE", "TEAMS")]
    rows += [
        (u["id"], _printable(u["username"]), u["role"], _printable(u["email"] or "-"), u["timezone"],
         ",".join(u["teams"]) or "-")
        for u in users
    ]  # fmt: skip
    _table(rows)
    return 0


def cmd_team_create(args) -> int:

    from domain.users import NameTaken
    from projections.users import team_by_name
    from web.api.teams import TeamWriteSchema

    data = _validated(TeamWriteSchema(), name=args.name, email=args.email)
    if data is None:
        return 2
    runtime = _runtime()
    try:
        try:
            _, position = runtime.config.create_team(
                name=data["name"], email=data.get("email"), avatar_url=None, at=datetime.now(UTC)
            )
        except NameTaken as taken:
            print(f"{taken.field}: {taken}", file=sys.stderr)
            return 1
        runtime.wait_for("config", position)
        row = team_by_name(runtime.db, data["name"])
    finally:
        runtime.close()
    print(f"Team {row['id']} '{_printable(row['name'])}' created")
    return 0


def cmd_team_list(args) -> int:
    from projections.users import teams_page

    runtime = _runtime()
    try:
        teams = teams_page(runtime.db, None, 1, 2**31 - 1).rows
    finally:
        runtime.close()
    _table([("ID", "NAME", "EMAIL")] + [(t["id"], _printable(t["name"]), _printable(t["email"] or "-")) for t in teams])
    return 0


def cmd_serve(args) -> int:
    """The embedded all-in-one server: web, ingest, escalation, projections and ticker in one process."""
    from waitress import create_server

    from projections.queries import any_api_token
    from web import create_app

    settings = _listening(Settings.from_env(), args.host, args.port)
    migrate(settings)
    runtime = Runtime(settings)
    smtp = None
    try:
        # Bound first: the admin token is made only when the banner that shows it will print, and
        # what the banner says is true. (waitress's own "Serving on" line is not logged.)
        try:
            server = create_server(
                create_app(runtime), host=settings.host, port=settings.port, threads=16, ident="tocsin"
            )
        except OSError as exc:
            print(f"Tocsin cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
                  " (another port: --port or TOCSIN_PORT)", file=sys.stderr, flush=True)
            return 1
        runtime.catch_up()
        admin_token = None
        if not any_api_token(runtime.db):
            admin_token = create_token(runtime, "admin", "admin")
        runtime.start()
        smtp = _embedded_smtp(runtime)
        print(start_banner(settings, smtp.address if smtp else None, admin_token), flush=True)
        server.run()
    finally:
        if smtp is not None:
            smtp.stop()
        runtime.close()
    return 0


def start_banner(settings: Settings, smtp_address: str | None, admin_token: str | None) -> str:
    """What `serve` prints once it runs: where the API, the integrations and email are, and the
    admin token when it was just created (shown this once)."""
    where = f"SQLite in {settings.data_dir}" if settings.backend == "sqlite" else (
        f"PostgreSQL, schema {settings.database_schema}"
    )
    if smtp_address is None:
        email = "not started (see above)" if settings.smtp_address else "off (TOCSIN_SMTP_ADDRESS is empty)"
    else:
        email = f"smtp://{smtp_address}, to <token>@{settings.inbound_email_domain or '<any domain>'}"
    lines = [
        f"Tocsin is listening on {settings.host}:{settings.port} ({where}); Ctrl-C stops it.",
        f"  dashboard      {settings.base_url}/  (sign in with an API token)",
        f"  API            {settings.base_url}/api/v1/  (header  Authorization: <API token>)",
        f"  integrations   {settings.base_url}/integrations/v1/<type>/<token>/  (each integration's link)",
        f"  email          {email}",
    ]
    if admin_token:
        lines.append(f"  admin token    {admin_token}  (shown only this once: keep it)")
    else:
        lines.append("  API tokens     `tocsin token list`; a new one: `tocsin token create --name NAME --role admin`")
    return "\n".join(lines)


def _embedded_smtp(runtime: Runtime):
    """The SMTP receiver inside `serve`; without it (address empty or taken) the rest still runs."""
    from workers.smtp import SMTPReceiver

    if not runtime.settings.smtp_address:
        return None
    # The start-up banner gives the address: the receiver's own "listening" log line would repeat it.
    smtp_log = logging.getLogger("workers.smtp")
    level = smtp_log.level
    smtp_log.setLevel(logging.WARNING)
    try:
        receiver = SMTPReceiver(runtime)
        receiver.start()
    except (OSError, ValueError, TimeoutError, RuntimeError) as exc:
        print(f"SMTP receiver not started ({runtime.settings.smtp_address}): {exc}", file=sys.stderr, flush=True)
        return None
    finally:
        smtp_log.setLevel(level)
    return receiver


def cmd_smtp(args) -> int:
    """Production SMTP receiver: commits each email alert to the inbox; scale out freely."""
    import signal
    import threading

    from workers.smtp import SMTPReceiver

    runtime = _runtime()
    address = args.address or runtime.settings.smtp_address
    if not address:
        runtime.close()
        raise SystemExit("TOCSIN_SMTP_ADDRESS is empty: give the SMTP receiver a HOST:PORT.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    receiver = SMTPReceiver(runtime, address)
    try:
        receiver.start()
        log.info("SMTP receiver on %s (%s)", receiver.address, runtime.settings.backend)
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        runtime.close()
    return 0


def _run_worker(name: str, **parts) -> int:
    """Run one production worker; on PostgreSQL only while it holds its singleton lock (a copy
    that loses it stops its work at once and waits as a standby again)."""
    import threading

    from adapters.singleton import SingletonLock, run_as_singleton

    settings = Settings.from_env()

    def start() -> Runtime:
        runtime = Runtime(settings)
        runtime.start(**parts)
        log.info("%s running (%s)", name, settings.backend)
        return runtime

    try:
        if settings.backend != "postgres":
            runtime = start()
            try:
                runtime.wait()
            finally:
                runtime.close()
            return 0
        # One per schema: several Tocsin installations may share a database.
        lock = SingletonLock(settings.postgres_conninfo(), f"{settings.database_schema}-{name}")
        run_as_singleton(lock, start, Runtime.close, threading.Event())
    except KeyboardInterrupt:
        pass
    return 0


def cmd_ingest(args) -> int:
    return _run_worker("ingest", ingest=True, projections=False, ticker=False, escalation=False)


def cmd_project(args) -> int:
    return _run_worker("projections", ingest=False, projections=True, ticker=False, escalation=False)


def cmd_ticker(args) -> int:
    return _run_worker("ticker", ingest=False, projections=False, ticker=True, escalation=False)


def cmd_escalate(args) -> int:
    # With Redis, notifications are sent by `tocsin worker`; without, by this process.
    deliver_here = not Settings.from_env().redis_url
    return _run_worker("escalation", ingest=False, projections=False, ticker=False, escalation=True,
                       deliver_here=deliver_here)  # fmt: skip


def cmd_worker(args) -> int:
    """An RQ worker sending notifications (any number may run; each attempt is sent once)."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    from workers.delivery import QUEUE_NAME, set_worker_deliverer

    settings = Settings.from_env()
    if not settings.redis_url:
        print("tocsin worker needs Redis: set TOCSIN_REDIS_URL (without it, `tocsin escalate` sends"
              " notifications itself)", file=sys.stderr)  # fmt: skip
        return 1
    runtime = Runtime(settings)
    set_worker_deliverer(runtime.deliverer)
    connection = Redis.from_url(settings.redis_url)
    try:
        # SimpleWorker runs jobs in this process, which keeps its connection pools and render
        # workers between jobs (the default worker forks a process per job).
        SimpleWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection).work(with_scheduler=False)
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()
    return 0


def cmd_web(args) -> int:
    """Production web process: gunicorn with threaded workers (each builds its own runtime)."""
    settings = _listening(Settings.from_env(), args.host, args.port)
    os.environ["TOCSIN_BASE_URL"] = settings.base_url  # the workers build their settings from it
    workers = os.environ.get("TOCSIN_WEB_WORKERS", "2")
    threads = os.environ.get("TOCSIN_WEB_THREADS", "16")
    bind = f"{settings.host}:{settings.port}"
    # The interpreter running this command has gunicorn installed, whatever PATH says.
    argv = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", workers,
            "--threads", threads, "--bind", bind]
    if os.environ.get("TOCSIN_ACCESS_LOG", "").lower() in ("1", "true", "yes"):
        argv += ["--access-logfile", "-"]  # off by default: a proxy in front usually logs requests
    argv.append("tocsin.wsgi:app")
    niceness = _web_niceness()
    if niceness:
        # Below the pipeline and the database on a shared host: under overload, accepting slows
        # down instead of ingest and the read models falling behind (or a lock holder starving).
        lower_priority(niceness)
    os.execv(sys.executable, argv)
    return 1  # not reached


def lower_priority(niceness: int) -> None:
    """Run this process (and what it starts) ``niceness`` steps below the others.

    With Linux's autogroup scheduling (on by default in Debian), the CPU is first shared equally
    between sessions, and a process's nice value only orders it within its own session. So when
    this process leads its own session, as it does under honcho, systemd or the benchmark, the
    session gets the same niceness. Otherwise the session is left alone: it is shared with
    others, such as the shell of the terminal this was started from.
    """
    os.nice(niceness)
    if os.getsid(0) != os.getpid():
        return
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(niceness))
    except OSError as exc:  # not Linux, no autogroup support, or changed too often just now
        log.debug("session niceness unchanged: %s", exc)


def _web_niceness() -> int:
    text = os.environ.get("TOCSIN_WEB_NICE", str(DEFAULT_WEB_NICE)).strip()
    try:
        niceness = int(text)
    except ValueError:
        niceness = -1
    if not 0 <= niceness <= 19:
        raise SystemExit(f"TOCSIN_WEB_NICE must be a whole number from 0 to 19, not {text!r}")
    return niceness


def cmd_replay(args) -> int:
    """Drop every read model and rebuild it from the events."""
    runtime = _runtime()
    try:
        for upstream, count in runtime.rebuild_read_models().items():
            names = ", ".join(runtime.runners[upstream].names)
            print(f"{upstream}: replayed {count} events into {names}")
    finally:
        runtime.close()
    return 0


def cmd_timeline(args) -> int:
    from projections.queries import alert_group, timeline

    runtime = _runtime()
    try:
        group = alert_group(runtime.db, args.alert_group_id)
        if group is None:
            print(f"no alert group {args.alert_group_id}", file=sys.stderr)
            return 1
        print(f"{group['id']}  {group['title']}  [{group['state']}]  {group['alerts_count']} alert(s)")
        for row in timeline(runtime.db, args.alert_group_id):
            print(f"{row['created_at']}  {row['action']}")
    finally:
        runtime.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tocsin", description="Tocsin on-call alert service")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run everything in one process (embedded SQLite by default)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    web = sub.add_parser("web", help="production web process (gunicorn)")
    web.add_argument("--host")
    web.add_argument("--port", type=int)
    web.set_defaults(func=cmd_web)

    smtp = sub.add_parser("smtp", help="production SMTP receiver (inbound email)")
    smtp.add_argument("--address", help="HOST:PORT to listen on (default: TOCSIN_SMTP_ADDRESS)")
    smtp.set_defaults(func=cmd_smtp)

    sub.add_parser("migrate", help="create event tables and apply read-model migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("ingest", help="production ingest process").set_defaults(func=cmd_ingest)
    sub.add_parser("project", help="production projections process").set_defaults(func=cmd_project)
    sub.add_parser("ticker", help="production ticker process (timed actions)").set_defaults(func=cmd_ticker)
    sub.add_parser("escalate", help="production escalation process (starts and stops escalations)").set_defaults(
        func=cmd_escalate
    )
    sub.add_parser("worker", help="production notification worker (RQ, needs TOCSIN_REDIS_URL)").set_defaults(
        func=cmd_worker
    )
    sub.add_parser("replay", help="rebuild every read model from the events").set_defaults(func=cmd_replay)

    timeline = sub.add_parser("timeline", help="print the audit timeline of an alert group")
    timeline.add_argument("alert_group_id")
    timeline.set_defaults(func=cmd_timeline)

    user = sub.add_parser("user", help="users (each API token belongs to one)")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    user_create = user_sub.add_parser("create", help="create a user")
    user_create.add_argument("--username", required=True)
    user_create.add_argument("--email")
    user_create.add_argument("--role", choices=ROLES, default="viewer")
    user_create.add_argument("--timezone", help="an IANA time zone such as Europe/Paris (default UTC)")
    user_create.add_argument("--team", action="append", default=[], metavar="TEAM",
                             help="a team (its id T... or its name) the user belongs to; repeat for more")  # fmt: skip
    user_create.set_defaults(func=cmd_user_create)
    user_sub.add_parser("list", help="list users").set_defaults(func=cmd_user_list)

    team = sub.add_parser("team", help="teams")
    team_sub = team.add_subparsers(dest="team_command", required=True)
    team_create = team_sub.add_parser("create", help="create a team")
    team_create.add_argument("--name", required=True)
    team_create.add_argument("--email")
    team_create.set_defaults(func=cmd_team_create)
    team_sub.add_parser("list", help="list teams").set_defaults(func=cmd_team_list)

    token = sub.add_parser("token", help="API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create an API token of a user and print it once")
    create.add_argument("--user", metavar="USERNAME", help="the user the token belongs to (and acts as)")
    create.add_argument(
        "--name", help="the token's name (default: the username); without --user, also the user's, created if missing"
    )
    create.add_argument("--role", choices=ROLES, help="without --user: the role of a user created for --name (viewer)")
    create.set_defaults(func=cmd_token_create)
    listing = token_sub.add_parser("list", help="list API tokens (id, name, role, created, revoked; never the secret)")
    listing.set_defaults(func=cmd_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke an API token")
    revoke.add_argument("token", metavar="ID_OR_NAME", help="the token's id (K...), its name, or a unique name prefix")
    revoke.set_defaults(func=cmd_token_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("TOCSIN_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
