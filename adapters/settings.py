"""Settings from the environment, and the event-store configuration they imply."""

from __future__ import annotations

import ipaddress
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit

from adapters.http_guard import OutgoingPolicy

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
# OnCall's inbound rate limits ("count/[n]s|m|h|d"): per integration, and across all integrations.
DEFAULT_RATELIMIT_INTEGRATION = "300/5m"
DEFAULT_RATELIMIT_TOTAL = "900/5m"
DEFAULT_SMTP_ADDRESS = "127.0.0.1:2525"
# How long the acknowledge / resolve / silence links of a notification (and its reply address) work.
DEFAULT_ACTION_LINK_LIFETIME = 7 * 24 * 3600
SECRET_KEY_ENV = "TOCSIN_SECRET_KEY"
SECRET_KEY_FILE = "secret_key"


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None  # postgresql://... selects production mode
    database_schema: str = "public"
    redis_url: str | None = None
    data_dir: Path = Path("var")
    base_url: str = "http://127.0.0.1:8080"
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    inbound_email_domain: str | None = None
    smtp_address: str = DEFAULT_SMTP_ADDRESS  # HOST:PORT of the SMTP receiver; empty: none
    ratelimit_integration: str = DEFAULT_RATELIMIT_INTEGRATION
    ratelimit_total: str = DEFAULT_RATELIMIT_TOTAL
    ratelimit_redis_prefix: str = "tocsin:ratelimit:"  # Redis key prefix of the counters
    # Where notification emails go out: smtp://user:pass@host:port (?starttls=true), smtps://...
    smtp_url: str | None = None
    # Internal addresses and networks outgoing notifications may reach (adapters.http_guard).
    outgoing_allow: str = ""
    action_link_lifetime: int = DEFAULT_ACTION_LINK_LIFETIME  # seconds
    extra_env: dict = field(default_factory=dict)  # passed to the event store (tests, tuning)

    @classmethod
    def from_env(cls, environ=None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("TOCSIN_DATABASE_URL") or None,
            database_schema=env.get("TOCSIN_DATABASE_SCHEMA", "public"),
            redis_url=env.get("TOCSIN_REDIS_URL") or None,
            data_dir=Path(env.get("TOCSIN_DATA_DIR", "var")),
            base_url=env.get("TOCSIN_BASE_URL", "").rstrip("/")
            or f"http://{env.get('TOCSIN_HOST', '127.0.0.1')}:{env.get('TOCSIN_PORT', '8080')}",
            host=env.get("TOCSIN_HOST", "127.0.0.1"),
            port=int(env.get("TOCSIN_PORT", "8080")),
            max_body_bytes=int(env.get("TOCSIN_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            inbound_email_domain=env.get("TOCSIN_INBOUND_EMAIL_DOMAIN") or None,
            smtp_address=env.get("TOCSIN_SMTP_ADDRESS", DEFAULT_SMTP_ADDRESS).strip(),
            ratelimit_integration=env.get("TOCSIN_RATELIMIT_INTEGRATION") or DEFAULT_RATELIMIT_INTEGRATION,
            ratelimit_total=env.get("TOCSIN_RATELIMIT_TOTAL") or DEFAULT_RATELIMIT_TOTAL,
            smtp_url=env.get("TOCSIN_SMTP_URL") or None,
            outgoing_allow=env.get("TOCSIN_OUTGOING_ALLOW", ""),
            action_link_lifetime=_positive_seconds(env, "TOCSIN_ACTION_LINK_LIFETIME", DEFAULT_ACTION_LINK_LIFETIME),
        )

    @property
    def mail_domain(self) -> str:
        """The domain of addresses the SMTP receiver takes: ``TOCSIN_INBOUND_EMAIL_DOMAIN``, else
        the host of the base URL (the receiver then takes any domain), an IP address as an address
        literal."""
        if self.inbound_email_domain:
            return self.inbound_email_domain
        host = urlsplit(self.base_url).hostname or self.host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return host
        return f"[IPv6:{host}]" if ":" in host else f"[{host}]"

    @property
    def outgoing_policy(self) -> OutgoingPolicy:
        """``TOCSIN_OUTGOING_ALLOW`` as a policy (ValueError when it lists something else)."""
        return OutgoingPolicy.from_setting(self.outgoing_allow)

    @property
    def backend(self) -> str:
        if self.database_url and self.database_url.startswith(("postgres://", "postgresql://")):
            return "postgres"
        if self.database_url:
            raise ValueError("TOCSIN_DATABASE_URL must be a postgresql:// URL (leave it unset for SQLite)")
        return "sqlite"

    def postgres_conninfo(self) -> str:
        """A libpq conninfo for the read-model pool, with the schema on the search path."""
        url = urlparse(self.database_url)
        parts = {
            "host": url.hostname or "127.0.0.1",
            "port": str(url.port or 5432),
            "dbname": (url.path or "/postgres").lstrip("/") or "postgres",
            "user": unquote(url.username or "postgres"),
        }
        if url.password:
            parts["password"] = unquote(url.password)
        conninfo = " ".join(f"{k}='{v}'" for k, v in parts.items())
        return conninfo + f" options='-c search_path={self.database_schema}'"

    def event_store_env(self, app_name: str, create_tables: bool) -> dict[str, str]:
        env: dict[str, str] = {"CREATE_TABLE": "y" if create_tables else "n"}
        if self.backend == "postgres":
            url = urlparse(self.database_url)
            env.update(
                PERSISTENCE_MODULE="eventsourcing.postgres",
                POSTGRES_DBNAME=(url.path or "/postgres").lstrip("/") or "postgres",
                POSTGRES_HOST=url.hostname or "127.0.0.1",
                POSTGRES_PORT=str(url.port or 5432),
                POSTGRES_USER=unquote(url.username or "postgres"),
                POSTGRES_PASSWORD=unquote(url.password or ""),
                POSTGRES_SCHEMA=self.database_schema,
                # Fail fast instead of queueing forever behind a stuck writer (then 503).
                POSTGRES_LOCK_TIMEOUT="5",
                POSTGRES_CONNECT_TIMEOUT="5",
                # No pre-ping: it doubles the round trips of every save and load. After an
                # outage, the runtime's reachability probe replaces dropped connections before
                # requests are let through again; a connection that breaks later fails its
                # command, which the caller retries (ingest, projections) or answers with 503.
                POSTGRES_PRE_PING="n",
                # Small pools: every process builds three applications (one writer thread each
                # on the hot path, thanks to group commit and batched ingest).
                POSTGRES_POOL_SIZE="2",
                APPLICATION_RECORDER_TOPIC="adapters.pg_recorders:ArrayApplicationRecorder",
                PROCESS_RECORDER_TOPIC="adapters.pg_recorders:ArrayProcessRecorder",
                POSTGRES_MAX_OVERFLOW="4",
            )
        else:
            env.update(
                PERSISTENCE_MODULE="eventsourcing.sqlite",
                SQLITE_DBNAME=str(self.data_dir / f"{app_name}.sqlite3"),
                SQLITE_LOCK_TIMEOUT="30",
            )
        env.update(self.extra_env)
        return env


def _positive_seconds(env, name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {text!r}")
    return int(text)


def secret_key(settings: Settings) -> str:
    """``TOCSIN_SECRET_KEY``, else a random key kept in the data directory (made on first use).

    It signs the dashboard's session cookies and the action links of notifications. Every process
    that serves the dashboard or the links, or receives replies, must share it, or what one signed
    another refuses: set the variable when these processes run on more than one host.
    """
    configured = os.environ.get(SECRET_KEY_ENV, "").strip()
    if configured:
        return configured
    path = Path(settings.data_dir) / SECRET_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Exclusive create: of two processes starting at once, one writes and both read its key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    for _ in range(50):
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.01)  # the other process is between create and write
    raise RuntimeError(f"the secret key file {path} is empty")
