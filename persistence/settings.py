"""The one settings object. Every layer may import this module; it imports nothing of ours.

It lives in `persistence/`, the bottom layer, because that is the one place inside our
four packages that every other layer may import without an arrow pointing up: a worker
reads its settings without loading the API package. It stays a leaf (tests/test_layers.py
holds it to that), so importing it loads nothing else of ours.

Each bound is a named field with a default and a reason. Values come from `AITASKS_*`
environment variables or a `.env` file; the OpenAI key and base URL also come from the
standard `OPENAI_API_KEY` / `OPENAI_BASE_URL`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEMO_MODEL = "demo"
# The model a deployment with an OpenAI key uses when AITASKS_DEFAULT_MODEL is not set.
OPENAI_FALLBACK_MODEL = "gpt-4o-mini"
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
REDIS_SCHEMES = ("redis", "rediss", "unix")
# PostgreSQL connections one API process may hold in each of its two pools, SQLAlchemy's
# and asyncpg's (persistence/database.py). Connections open only as load needs them and
# then stay open: under load, a connection opened per request costs throughput.
DB_POOL_SIZE = 30


# Passwords that ship in examples and compose files: in production they are refused.
DEFAULT_PASSWORDS = frozenset(
    {"postgres", "password", "secret", "changeme", "change-me", "aitasks", "redis", "admin"}
)


class ConfigurationError(Exception):
    """Start-up refuses the configuration; the message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AITASKS_", env_file=".env", extra="ignore", populate_by_name=True
    )

    env: Literal["development", "production"] = "development"
    database_url: str | None = None
    redis_url: str | None = None
    # Where `aitasks run` keeps the embedded PostgreSQL and Redis data.
    data_dir: Path = Path(".aitasks")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    graphiql: bool | None = None
    # Callers must send an API key. Off (AITASKS_AUTH=off) only in development: every
    # request then acts as one caller, "development".
    auth: bool = True
    # What one GraphQL document may ask for (see schema/document_limits.py for why these values).
    query_max_depth: int = Field(default=10, ge=2, le=100)
    query_max_tokens: int = Field(default=2_000, ge=100, le=100_000)
    query_max_aliases: int = Field(default=30, ge=0, le=10_000)
    # Operations one HTTP request may carry as a JSON array (batching); 1 turns it off.
    batch_max_operations: int = Field(default=1, ge=1, le=100)
    # Schema introspection; unset means on in development and off in production.
    introspection: bool | None = None
    # Subscriptions one WebSocket may hold at once, and how long a client may take to
    # send `connection_init` after opening one (then it is closed with 4408).
    ws_subscriptions_max: int = Field(default=100, ge=1, le=10_000)
    # Open WebSockets one API key may hold on one API process (0: no limit); one more is
    # closed with 4403.
    ws_connections_max_per_key: int = Field(default=50, ge=0)
    ws_connection_init_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # How WebSockets are served: "lean" (graphql_app/ws/protocol.py, a fraction of the
    # memory per idle socket) or "uvicorn" (uvicorn's own, as `uvicorn` installs it).
    ws_protocol: Literal["lean", "uvicorn"] = "lean"
    # The longest message a client may send on a WebSocket (a longer one closes it with
    # 1009). An operation over the socket may carry an inline file, which base64 makes
    # a third longer than AITASKS_INLINE_FILE_MAX_BYTES.
    ws_message_max_bytes: int = Field(default=4 * 2**20, ge=2**10, le=64 * 2**20)
    # Messages received and not yet read by the API, past which it stops reading the
    # socket (TCP then slows the client) instead of buffering more.
    ws_receive_queue_max: int = Field(default=32, ge=1, le=10_000)
    # A socket quiet this long is pinged (by one sweep of all sockets per interval, so
    # within two intervals of quiet); one that answers nothing within the timeout is
    # closed with 1011. Proxies drop idle connections after about a minute.
    ws_ping_interval_seconds: float = Field(default=20.0, gt=0, le=3600)
    ws_ping_timeout_seconds: float = Field(default=20.0, gt=0, le=3600)
    # Per caller, shared by every API process (0: no limit). Requests count every HTTP
    # GraphQL request; creates count createTask. Unfinished tasks are those PENDING or
    # PROCESSING: a caller with this many must wait for one to end before adding more.
    requests_per_minute: int = Field(default=600, ge=0)
    creates_per_minute: int = Field(default=120, ge=0)
    unfinished_tasks_max: int = Field(default=100, ge=0)
    # A key's check is remembered this long, so a busy client costs no query per request;
    # a revoked key stops working within it.
    auth_cache_seconds: float = Field(default=10.0, ge=0, le=3600)
    # Keys in no cache looked up at once, the rest waiting: a flood of made-up keys
    # cannot take the database's connections.
    auth_lookups_in_flight: int = Field(default=4, ge=1, le=100)
    # Keys remembered, this many known and separately this many unknown ones (least
    # recently used forgotten first): made-up keys can only push out other made-up keys.
    auth_cache_max_keys: int = Field(default=10_000, ge=1)
    # MCP sessions whose opener is remembered (tasks over /mcp); a forgotten one answers
    # 404 and its client opens another, as after a restart.
    mcp_sessions_tracked: int = Field(default=10_000, ge=1)
    # A browser's login (a session kept in Redis) lasts this long, then it logs in again:
    # a working day, so a forgotten tab does not stay signed in for good.
    session_ttl_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 86400)
    # FastAPI's built-in OpenTelemetry tracing, metrics and logs. Off unless asked for:
    # with no exporter configured it only costs time (about 5% of a create's CPU).
    opentelemetry: bool = False
    # "json" (one object per line) or "text"; unset: json in production, text otherwise.
    log_format: Literal["json", "text"] | None = None

    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AITASKS_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AITASKS_OPENAI_BASE_URL", "OPENAI_BASE_URL")
    )
    # A provider that sends nothing for this long is treated as failed.
    openai_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    default_model: str | None = None
    # Models a caller may ask for, comma separated; `*` lets any name through to the provider.
    models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # How long the offline demo model takes to write its answer (0 answers at once).
    demo_duration_seconds: float = Field(default=3.0, ge=0, le=600)

    # 32,000 characters is about 8,000 tokens: generous for a prompt, small enough for a row.
    prompt_max_chars: int = Field(default=32_000, gt=0, le=1_000_000)
    page_size_max: int = Field(default=100, gt=0, le=1000)

    # Input files and artifacts live in PostgreSQL: these keep each row and each request
    # to a size a database row and an API process's memory handle without strain.
    file_max_bytes: int = Field(default=10 * 2**20, gt=0, le=512 * 2**20)
    # Inline (base64) files travel inside the JSON request and are parsed with it, so
    # they are kept smaller; larger files go as multipart uploads.
    inline_file_max_bytes: int = Field(default=2**20, gt=0, le=64 * 2**20)
    files_max_per_task: int = Field(default=4, gt=0, le=100)
    # Any HTTP request body longer than this is refused with 413 before it is read.
    request_max_bytes: int = Field(default=48 * 2**20, gt=0)
    # The largest GraphQL answer sent: a small document of aliased pages can ask for
    # megabytes. A full page of 100 tasks with 20 KB results each is about 2 MB.
    response_max_bytes: int = Field(default=8 * 2**20, ge=1024)
    artifact_max_bytes: int = Field(default=20 * 2**20, gt=0, le=512 * 2**20)
    # The JSON `params` of a task, as sent.
    params_max_bytes: int = Field(default=16 * 2**10, gt=0, le=2**20)
    # A task's JSON `output` (a data profile, image facts), as stored.
    output_max_bytes: int = Field(default=2**20, gt=0, le=64 * 2**20)
    # The most pixels an image (input or any step's result) may have: 40 megapixels is a
    # large photograph and about 160 MB decoded; a decompression bomb claims far more.
    # At most Pillow's own hard ceiling (about 179 million), past which it opens nothing.
    image_max_pixels: int = Field(default=40_000_000, gt=0, le=178_000_000)
    # Rows and columns a DATA_ANALYSIS task reads at most, and group-by groups it reports.
    data_max_rows: int = Field(default=1_000_000, gt=0)
    data_max_columns: int = Field(default=200, gt=0, le=10_000)
    data_max_groups: int = Field(default=1_000, gt=0)
    # Public URL of the API, for artifact download links; unset, links use the host the
    # client called (set it behind a proxy that rewrites the host).
    public_url: str | None = None

    # A PENDING task older than this whose message may have been lost is sent again.
    pending_requeue_seconds: float = Field(default=300.0, gt=0)
    sweep_interval_seconds: float = Field(default=30.0, gt=0)
    # A sweeping worker's main process looks at Redis (its run_id, its queues) and
    # PostgreSQL this often, so that it reconciles within seconds of an outage's end
    # (see tasks/worker/reconciler.py): one INFO, one LLEN per queue and priority, and a query.
    reconcile_check_seconds: float = Field(default=2.0, gt=0)
    # A due PENDING task not sent for this long whose message is in no queue and held by
    # no worker (Redis came back empty, the API died between its commit and its send, a
    # message was lost) is sent again; long enough for a create's own send to land first.
    pending_orphan_seconds: float = Field(default=5.0, gt=0)
    # The most queued messages the reconciler reads per check to learn which tasks wait
    # in the broker (a kind whose queues hold more is left to the requeue timer): about
    # 1 KB each, every `reconcile_check_seconds`. 0 reads none: only a kind whose queues
    # are empty has its stale PENDING tasks sent again at once.
    reconcile_scan_max_messages: int = Field(default=2_000, ge=0)
    # While PostgreSQL or Redis is unreachable, requests are answered 503 with this
    # Retry-After: about how long a restart or a failover takes.
    outage_retry_after_seconds: int = Field(default=5, ge=1)
    # A worker holds a running task for this long and renews it while alive (a third of
    # it at a time); a task whose lease ran out belongs to a dead worker and is taken
    # over. Short enough that the task of a worker whose main process died (which no
    # one sees die) starts again within 30 s; long enough that a renewal held up by a
    # 10 s network drop still lands in time.
    task_lease_seconds: float = Field(default=20.0, ge=1)
    # The longest any task may run (the most `timeoutSeconds` may ask for); past it the
    # task ends FAILED. Celery kills a worker process still busy
    # task_kill_grace_seconds later.
    task_time_limit_seconds: float = Field(default=1800.0, gt=0)
    # Headroom past a task's time limit (which the task body enforces itself) before
    # Celery kills the worker process as a last resort.
    task_kill_grace_seconds: float = Field(default=60.0, ge=1)
    # A task's time limit when `createTask` names none.
    task_timeout_default_seconds: float = Field(default=600.0, gt=0)
    # Tries for a task whose model fails for a passing reason (rate limit, 5xx, timeout,
    # lost connection), each after an exponential back-off with jitter.
    retry_attempts: int = Field(default=4, ge=1, le=20)
    retry_backoff_seconds: float = Field(default=2.0, ge=0)
    # At most 10 minutes: a retry waits in the broker (an ETA message), which must hand
    # it out well within its visibility timeout.
    retry_backoff_max_seconds: float = Field(default=60.0, ge=0, le=600)
    # The latest a delayed task may be asked to start (`runAt` / `delaySeconds`).
    schedule_max_days: float = Field(default=30.0, gt=0)
    # An idempotency key returns the task it first created for this long.
    idempotency_window_hours: float = Field(default=24.0, gt=0)
    # A task whose worker was lost this many times (crash, out of memory) ends FAILED
    # instead of taking down one worker after another.
    max_attempts: int = Field(default=5, ge=1, le=100)
    # Redis broker: an unacknowledged message is handed out again after this long. It must
    # exceed the longest task, or a task still running would be delivered a second time.
    visibility_timeout_seconds: float = Field(default=3600.0, gt=0)
    # Streamed output is written (one UPDATE, one logged event, one message) when this
    # much text has gathered or this long has passed since the last write, whichever is
    # first: a fast model then costs a write per 200 characters, not one per token.
    stream_flush_chars: int = Field(default=200, gt=0, le=1_000_000)
    stream_flush_seconds: float = Field(default=0.05, ge=0)
    # The change log of a task is kept this long after it ends; after that, resuming a
    # subscription on it gives its final state as one update.
    event_retention_hours: float = Field(default=168.0, gt=0)
    worker_concurrency: int | None = Field(default=None, gt=0, le=256)
    # Text tasks wait on the model, not the CPU: the text worker runs up to this many at
    # once, each a coroutine on its process's one event loop, where a pool process per
    # task would hold a whole interpreter to wait on a socket.
    text_slots_per_process: int = Field(default=50, ge=1, le=1000)
    # Celery's task events (received, started, succeeded...), which Flower reads. Off, a
    # worker's main process does about half the work per task; `aitasks flower` turns
    # them on in the running workers when it starts, and Flower keeps them on.
    worker_task_events: bool = False

    # Plain creates (no files, no idempotency key) arriving together share one INSERT,
    # and the messages of creates one Redis call: at most this many per statement or
    # call, and this many of each at once per API process (a statement holds a pooled
    # connection while it runs). What comes while that many run goes with the next one,
    # so a lone create goes out at once.
    create_group_max_rows: int = Field(default=64, ge=1, le=1000)
    create_groups_in_flight: int = Field(default=4, ge=1, le=30)
    # The API gives up on handing a task to the broker after this long; the sweeper retries.
    enqueue_timeout_seconds: float = Field(default=5.0, gt=0)
    # Each API process checks its subscriptions against PostgreSQL this often (one query
    # per 1,000 subscribed tasks), since a worker may commit a change and die before
    # publishing it; a dashboard feed with nothing heard re-reads recent changes as often.
    subscription_resync_seconds: float = Field(default=15.0, gt=0)
    # While an API process cannot reach Redis, its subscriptions read changes from the
    # PostgreSQL log this often instead (one query per 1,000 followed tasks, and one per
    # `taskUpdates` feed), marked `live: false`: late by at most this much, never lost.
    subscription_poll_seconds: float = Field(default=2.0, gt=0)
    # Changes buffered for one slow subscriber before it catches up from the log instead.
    subscriber_queue_size: int = Field(default=256, gt=0, le=100_000)
    # `aitasks run` waits this long for its processes to stop before killing them.
    shutdown_timeout_seconds: float = Field(default=10.0, gt=0)
    # `aitasks run` gives its API and workers this long to answer before it gives up: a
    # first start on a busy laptop imports a lot.
    run_start_timeout_seconds: float = Field(default=90.0, gt=0)

    # --- Scaling out (docs/scaling.md) ---
    # API processes `aitasks api` starts on one port; unset: one per core in production,
    # one in development (where a reload or a debugger wants a single process). Each
    # holds its own pools and its own Redis subscription.
    api_workers: int | None = Field(default=None, ge=1, le=256)
    # Each API process holds up to twice this many PostgreSQL connections (two pools).
    # Every API process on every host, and the workers, share PostgreSQL's
    # max_connections (100 by default): lower it when running many API processes, or put
    # PgBouncer in front.
    db_pool_size: int = Field(default=DB_POOL_SIZE, ge=1, le=1000)

    @field_validator("openai_api_key", "openai_base_url", "default_model", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose files pass `VAR: ${VAR:-}`: an empty value means "not set".
        return None if value == "" else value

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @functools.cached_property
    def effective_default_model(self) -> str:
        if self.default_model:
            return self.default_model
        return OPENAI_FALLBACK_MODEL if self.openai_api_key else DEMO_MODEL

    @functools.cached_property
    def allowed_models(self) -> frozenset[str]:
        """The demo model is always there, so a fresh install can be tried offline."""
        return frozenset({DEMO_MODEL, self.effective_default_model, *self.models})

    @property
    def any_model_allowed(self) -> bool:
        return "*" in self.models

    @property
    def handoff_window_seconds(self) -> float:
        """A delayed task starting within this long is handed to the broker now, to run
        at its time; a later one waits in PostgreSQL until a sweep finds it this close.
        Half the visibility timeout at most, so the broker never hands a waiting message
        out twice."""
        return min(2 * self.sweep_interval_seconds, self.visibility_timeout_seconds / 2)

    @property
    def effective_api_workers(self) -> int:
        if self.api_workers is not None:
            return self.api_workers
        return usable_cores() if self.env == "production" else 1

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" if self.log_format else self.env == "production"

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else self.env == "development"

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else self.env == "development"

    def check(self) -> None:
        """Raise ConfigurationError with a sentence for the first thing that cannot work."""
        for problem in _problems(self):
            raise ConfigurationError(problem)

    def require_services(self) -> tuple[str, str]:
        """The database and Redis URLs, for processes that do not start embedded servers."""
        if not self.database_url:
            raise ConfigurationError(
                "AITASKS_DATABASE_URL is not set: set it to a PostgreSQL URL such as "
                "postgresql://user:password@localhost:5432/aitasks, or start everything "
                "with `aitasks run`, which starts an embedded PostgreSQL."
            )
        if not self.redis_url:
            raise ConfigurationError(
                "AITASKS_REDIS_URL is not set: set it to a Redis URL such as "
                "redis://localhost:6379/0, or start everything with `aitasks run`, "
                "which starts an embedded Redis."
            )
        return self.database_url, self.redis_url


def usable_cores() -> int:
    """The cores this process may run on (a container's cpuset, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _problems(settings: Settings) -> list[str]:
    problems = []
    if settings.database_url and _scheme(settings.database_url) not in POSTGRES_SCHEMES:
        problems.append(
            "AITASKS_DATABASE_URL must be a PostgreSQL URL starting with postgresql:// "
            f"(got one starting with {_scheme(settings.database_url) or 'no scheme'}://)."
        )
    if settings.redis_url and _scheme(settings.redis_url) not in REDIS_SCHEMES:
        problems.append(
            "AITASKS_REDIS_URL must be a Redis URL starting with redis://, rediss:// or "
            f"unix:// (got {settings.redis_url!r})."
        )
    model = settings.effective_default_model
    if model != DEMO_MODEL and not settings.openai_api_key:
        problems.append(
            f"AITASKS_DEFAULT_MODEL is {model!r} but no OpenAI key is set: set "
            "OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server), or set "
            "AITASKS_DEFAULT_MODEL=demo to use the offline demo model."
        )
    if settings.task_timeout_default_seconds > settings.task_time_limit_seconds:
        problems.append(
            "AITASKS_TASK_TIMEOUT_DEFAULT_SECONDS must not exceed "
            f"AITASKS_TASK_TIME_LIMIT_SECONDS ({settings.task_time_limit_seconds:g} s)."
        )
    if settings.retry_backoff_seconds > settings.retry_backoff_max_seconds:
        problems.append(
            "AITASKS_RETRY_BACKOFF_SECONDS must not exceed AITASKS_RETRY_BACKOFF_MAX_SECONDS."
        )
    if not settings.auth and settings.env == "production":
        problems.append(
            "AITASKS_AUTH=off is allowed only in development: in production every caller "
            "needs an API key (create one with `aitasks keys create --name NAME`)."
        )
    if settings.env == "production":
        problems += _weak_secrets(settings)
    if settings.inline_file_max_bytes > settings.file_max_bytes:
        problems.append(
            "AITASKS_INLINE_FILE_MAX_BYTES must not exceed AITASKS_FILE_MAX_BYTES: an inline "
            "file is still a file."
        )
    if settings.request_max_bytes < settings.file_max_bytes:
        problems.append(
            "AITASKS_REQUEST_MAX_BYTES must be at least AITASKS_FILE_MAX_BYTES, or no upload "
            "of the largest allowed file could arrive."
        )
    longest_run = settings.task_time_limit_seconds + settings.task_kill_grace_seconds
    if settings.visibility_timeout_seconds <= longest_run:
        problems.append(
            "AITASKS_VISIBILITY_TIMEOUT_SECONDS must be larger than "
            "AITASKS_TASK_TIME_LIMIT_SECONDS plus AITASKS_TASK_KILL_GRACE_SECONDS "
            f"({longest_run:g} s now), or a task still running would be handed to a "
            "second worker."
        )
    return problems


def _weak_secrets(settings: Settings) -> list[str]:
    """A server reached over the network with no password, or a well-known one."""
    problems = []
    for name, url in (
        ("AITASKS_DATABASE_URL", settings.database_url),
        ("AITASKS_REDIS_URL", settings.redis_url),
    ):
        if not url or _scheme(url) == "unix":
            continue
        parts = urlsplit(url)
        over_network = bool(parts.hostname) and "host=" not in (parts.query or "")
        if over_network and not parts.password:
            problems.append(
                f"{name} has no password: in production a server reached over the network "
                "needs one (set it in the URL)."
            )
        elif parts.password and parts.password.lower() in DEFAULT_PASSWORDS:
            problems.append(
                f"{name} uses the well-known password {parts.password!r}: set a real one "
                "in production."
            )
    return problems


def describe_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = "AITASKS_" + "_".join(str(part) for part in item["loc"]).upper()
        lines.append(f"{name}: {item['msg']} (got {item.get('input')!r}).")
    return "Invalid configuration. " + " ".join(lines) + " Fix these settings and start again."


def load_settings() -> Settings:
    """Read and check the settings, turning every problem into a ConfigurationError."""
    try:
        settings = Settings()
    except ValidationError as error:
        raise ConfigurationError(describe_validation_error(error)) from None
    settings.check()
    return settings


@functools.cache
def get_settings() -> Settings:
    return load_settings()


def export_service_urls(database_url: str, redis_url: str) -> None:
    """Hand embedded servers' URLs to this process's settings and to child processes."""
    os.environ["AITASKS_DATABASE_URL"] = database_url
    os.environ["AITASKS_REDIS_URL"] = redis_url
    get_settings.cache_clear()
