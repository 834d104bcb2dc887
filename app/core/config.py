"""Settings from the environment and `.env` (README, "Configuration"). One object, read once."""

import ipaddress
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Fal calls other than submit are bounded by this many times FAL_TIMEOUT_S (app/fal/client.py).
FAL_CALL_BUDGET_FACTOR = 3
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "admin", "secret", "dev-admin-token", "dev-media-signing-key"}
)


class MediaBackend(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class AppEnv(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


def to_asyncpg_url(url: str) -> str:
    """Accept `postgres://`, `postgresql://` and `postgresql+asyncpg://`; return the last."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    raise ValueError(
        "DATABASE_URL must start with postgres://, postgresql:// or postgresql+asyncpg://"
    )


def to_libpq_url(url: str) -> str:
    """The same URL in the form libpq tools (pg_dump, psql) and raw asyncpg accept."""
    return "postgresql://" + to_asyncpg_url(url).removeprefix("postgresql+asyncpg://")


def _is_loopback(host: str | None) -> bool:
    if not host or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: resolved by Fal, not by us


# Where placeholder secrets are tolerated: a developer's machine and the test suite.
LOCAL_ENVS = frozenset({AppEnv.DEVELOPMENT, AppEnv.TEST})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_env: AppEnv = AppEnv.DEVELOPMENT
    # Unset only makes sense for `vidgen dev`, which starts a local PostgreSQL and fills it in.
    database_url: str | None = None
    admin_token: str = "dev-admin-token"
    fal_key: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    fal_jwks_url: str = "https://rest.alpha.fal.ai/.well-known/jwks.json"
    backup_dir: Path = Path("backups")
    # When set, each backup carries an HMAC-SHA256 of its bytes that restore verifies: the
    # `.sha256` sidecar detects damage, this detects tampering.
    backup_signing_key: str | None = None
    # `backup status` fails when the newest valid backup is older than this.
    backup_max_age_hours: float = Field(default=24.0, gt=0)
    # `migrate deploy` on a database holding data wants a valid backup at most this old.
    migrate_backup_max_age_hours: float = Field(default=6.0, gt=0)
    # Test/ops hook: pretend BACKUP_DIR has this many free bytes (the real reading otherwise).
    backup_free_bytes_override: int | None = Field(default=None, ge=0)
    max_active_jobs_per_user: int = Field(default=10, ge=1)
    # Per user, shared by every replica (app/core/ratelimit.py); 0 turns a limit off.
    rate_limit_creates_per_minute: int = Field(default=60, ge=0)
    rate_limit_quotes_per_minute: int = Field(default=600, ge=0)
    rate_limit_uploads_per_minute: int = Field(default=20, ge=0)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Answered 413 at the ASGI layer, before authentication and before the body is read whole.
    max_json_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_webhook_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # Answered 431: the total size of a request's headers, and their number.
    max_header_bytes: int = Field(default=32 * 1024, gt=0)
    max_header_count: int = Field(default=100, gt=0)
    # image_url may be a data: URI up to this size; larger images go through POST /api/uploads.
    max_data_uri_bytes: int = Field(default=1024 * 1024, gt=0)
    # An upload's largest size, enforced while it streams. UPLOAD_MAX_BYTES is the name
    # DESIGN.md §10 gives; MAX_UPLOAD_BYTES, its first name, is still read.
    upload_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        gt=0,
        validation_alias=AliasChoices("upload_max_bytes", "MAX_UPLOAD_BYTES"),
    )
    # GET /api/videos/{id}/events (app/videos/events.py): how often the process reads every
    # watched row, in one query for all its streams (any replica's change shows up).
    events_poll_interval_s: float = Field(default=1.0, gt=0)
    # Open streams per user in one process (each replica counts its own); the next is 429.
    max_streams_per_user: int = Field(default=5, ge=1)
    # Open streams a process holds for everyone together: each costs a task and a socket.
    max_streams_per_process: int = Field(default=1000, ge=1)
    # A stream then ends; the client reconnects with Last-Event-ID and misses nothing.
    stream_max_lifetime_s: float = Field(default=600.0, gt=0)
    # A `: keep-alive` comment after this long without an event, for proxies' idle timeouts.
    stream_keepalive_s: float = Field(default=15.0, gt=0)

    # Our copy of every output and upload (app/media/): `local` files under MEDIA_DIR served
    # by the app at /media with HMAC-signed expiring URLs, or `s3` (AWS S3, R2, MinIO, GCS
    # interop) with presigned URLs. Credentials: the usual AWS_* variables.
    media_backend: MediaBackend = MediaBackend.LOCAL
    media_dir: Path = PROJECT_ROOT / ".data" / "media"
    # Signs local media URLs; every replica needs the same key.
    media_signing_key: str = "dev-media-signing-key"
    media_url_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # Unset: media is kept forever. Set: the reconciler deletes the files of videos older.
    media_retention_days: float | None = Field(default=None, gt=0)
    # A Fal output larger than this is refused (the job fails and is refunded).
    media_max_bytes: int = Field(default=2 * 1024**3, gt=0)
    # A failed copy is retried after this, doubling, until the job's deadline.
    media_copy_backoff_s: float = Field(default=2.0, gt=0)
    media_copy_concurrency: int = Field(default=2, ge=1)
    # A row being copied is leased this long, renewed every third of it while the copy runs:
    # after a crash mid-copy, another worker takes it over within this time.
    media_copy_lease_s: float = Field(default=60.0, gt=0)
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None

    # Credits = ceil(Fal's cost x (100 + margin) / 100 / USD per credit): never below Fal's bill.
    price_margin_percent: int = Field(default=20, ge=0, le=1000)
    # When set, a webhook signed for another Fal user id is refused (401) and changes nothing.
    fal_webhook_user_id: str | None = None

    # Fal: every call bounded; the simulator's storage host when FAL_KEY is unset (dev/tests).
    # Status, result, cancel and upload: fal-client's own retries included, within 3x this.
    fal_timeout_s: float = Field(default=10.0, gt=0)
    # One submit POST, never retried by fal-client after a timeout (it would start a second
    # paid job): fal-client's own default. A submit that times out is "maybe accepted".
    fal_submit_timeout_s: float = Field(default=120.0, gt=0)
    # A submit that timed out or whose process died may have reached Fal: its webhook (whose
    # URL names the video) is awaited this long before the job is submitted again. Also the
    # lease of a row being submitted, so it must outlast the submit call.
    submit_uncertain_grace_s: float = Field(default=600.0, gt=0)
    fal_storage_url: str | None = None
    # Dispatch and reconciliation (docs/architecture.md, "The life of a video"): a job never
    # waits forever.
    # Off only in tests of the API alone: then nothing talks to Fal and `pending` rows wait.
    dispatch_enabled: bool = True
    reconcile_interval_s: float = Field(default=2.0, gt=0)
    reconcile_batch: int = Field(default=50, ge=1)
    submit_max_attempts: int = Field(default=5, ge=1)
    submit_backoff_s: float = Field(default=2.0, gt=0)
    # A claim on a row being polled (status, then result) expires after this; then another
    # worker may retry. It must outlast both calls (validated).
    claim_lease_s: float = Field(default=90.0, gt=0)
    # Poll Fal about a queued / processing job we have heard nothing of for this long.
    poll_after_s: float = Field(default=30.0, gt=0)
    # A job still not finished this long after creation is failed and refunded.
    job_deadline_s: float = Field(default=3600.0, gt=0)
    jwks_cache_s: float = Field(default=24 * 3600.0, gt=0)
    jwks_refetch_min_interval_s: float = Field(default=60.0, gt=0)
    webhook_tolerance_s: int = Field(default=300, gt=0)

    # Maintenance mode is re-read from the database this often by every replica.
    maintenance_refresh_s: float = Field(default=2.0, gt=0)
    # When set, GET /metrics requires `Authorization: Bearer <METRICS_TOKEN>` and includes the
    # ledger totals (revenue-like); required in production.
    metrics_token: str | None = None
    # The database gauges of /metrics are recomputed at most this often for the whole
    # deployment (app/ops/metrics.py); the backup age is re-read as often by each process.
    metrics_refresh_s: float = Field(default=30.0, gt=0)

    # Sign-in with the frontend's tokens (README, "Sign-in with your frontend's tokens"):
    # `Authorization: Bearer <JWT>` from its identity provider, verified against its JWKS
    # (RS256, ES256, EdDSA) or a shared HS256 secret, one of the two; neither ➜ JWTs are 401.
    auth_jwks_url: str | None = None
    auth_jwt_secret: str | None = None
    # Checked when set; staging and production require both once a JWT source is set.
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_leeway_s: float = Field(default=30.0, ge=0, le=300)
    # The IdP's keys are kept this long; a token naming an unknown `kid` refetches them, at most
    # once per interval (a flood of bogus kids costs the IdP one request per interval).
    auth_jwks_cache_s: float = Field(default=600.0, gt=0)
    auth_jwks_refetch_min_interval_s: float = Field(default=30.0, ge=0)
    auth_jwks_timeout_s: float = Field(default=5.0, gt=0)

    migrations_dir: Path = PROJECT_ROOT / "migrations"
    # Two pools per worker process, both opened at start-up. The driver pool (asyncpg's own)
    # serves the hot paths: authentication, creates, quotes, webhooks. The session pool
    # (SQLAlchemy's) serves reads, cancels, admin routes and the background loops. A worker
    # holds at most DB_DRIVER_POOL_SIZE + DB_POOL_SIZE connections. Requests beyond a pool
    # queue for a connection (up to DB_POOL_TIMEOUT_S, then 503): overflow connections would
    # be opened on the request path and closed after it, and that churn costs more than the
    # wait. PostgreSQL's throughput peaks at a few busy connections per core; more only adds
    # processes that compete with the app for the CPU (bench/README.md).
    db_driver_pool_size: int = Field(default=10, ge=1)
    db_pool_size: int = Field(default=5, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout_s: float = Field(default=10.0, gt=0)
    # Models (slug, price, limits) are read from a per-process cache refreshed this often;
    # `vidgen models sync` reaches every replica within this time.
    catalog_refresh_s: float = Field(default=5.0, gt=0)
    # A request whose Idempotency-Key is held by one still running waits this long, then 409.
    idempotency_wait_s: float = Field(default=10.0, gt=0)
    # Bounds /api/health so a black-holed database answers 503 instead of hanging.
    health_timeout_s: float = Field(default=2.0, gt=0)
    # On SIGTERM `vidgen serve` stops accepting, ends live-update streams at once, and gives
    # requests in flight this long to finish before it cancels them (uvicorn's
    # timeout_graceful_shutdown). A pod's terminationGracePeriodSeconds must exceed it.
    shutdown_timeout_s: int = Field(default=20, ge=1)

    @field_validator("database_url")
    @classmethod
    def _force_asyncpg_scheme(cls, value: str | None) -> str | None:
        return to_asyncpg_url(value) if value else None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _leases_outlast_calls(self) -> "Settings":
        if self.submit_uncertain_grace_s <= self.fal_submit_timeout_s:
            raise ValueError("SUBMIT_UNCERTAIN_GRACE_S must exceed FAL_SUBMIT_TIMEOUT_S")
        if self.claim_lease_s <= 2 * FAL_CALL_BUDGET_FACTOR * self.fal_timeout_s:
            raise ValueError(
                "CLAIM_LEASE_S must exceed a poll's two Fal calls "
                f"(2 x {FAL_CALL_BUDGET_FACTOR} x FAL_TIMEOUT_S)"
            )
        return self

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> "Settings":
        if self.media_backend is MediaBackend.S3 and not self.s3_bucket:
            raise ValueError("MEDIA_BACKEND=s3 needs S3_BUCKET")
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        # Sign-in with the frontend's tokens: one key source (a JWKS configured means no HS256
        # token is ever accepted), an HS256 secret of at least 256 bits (RFC 7518 §3.2), and
        # outside a developer's machine tokens bound to our IdP and to this API.
        if self.auth_jwks_url and self.auth_jwt_secret:
            raise ValueError("set AUTH_JWKS_URL or AUTH_JWT_SECRET, not both")
        if self.auth_jwt_secret and len(self.auth_jwt_secret.encode()) < 32:
            raise ValueError("AUTH_JWT_SECRET must be 32+ bytes (HS256 wants a 256-bit key)")
        if (self.auth_jwks_url or self.auth_jwt_secret) and self.app_env not in LOCAL_ENVS:
            if not (self.auth_issuer and self.auth_audience):
                raise ValueError(
                    f"AUTH_ISSUER and AUTH_AUDIENCE are required in {self.app_env.value} "
                    "when AUTH_JWKS_URL or AUTH_JWT_SECRET is set"
                )
            if self.auth_jwks_url and urlsplit(self.auth_jwks_url).scheme != "https":
                raise ValueError(f"AUTH_JWKS_URL must be https:// in {self.app_env.value}")
        if self.app_env not in LOCAL_ENVS:  # staging holds real users and money too
            if self.admin_token in PLACEHOLDER_SECRETS or len(self.admin_token) < 24:
                raise ValueError(
                    f"ADMIN_TOKEN must be a real secret (24+ chars) in {self.app_env.value}"
                )
            if self.media_backend is MediaBackend.LOCAL and (
                self.media_signing_key in PLACEHOLDER_SECRETS or len(self.media_signing_key) < 24
            ):
                raise ValueError(
                    f"MEDIA_SIGNING_KEY must be a real secret (24+ chars) in {self.app_env.value}"
                )
            if self.metrics_token is not None and len(self.metrics_token) < 24:
                raise ValueError(f"METRICS_TOKEN must be 24+ chars in {self.app_env.value}")
        if self.app_env is AppEnv.PRODUCTION:
            if not self.fal_key:
                raise ValueError("FAL_KEY is required in production (the simulator is dev-only)")
            public = urlsplit(self.public_base_url)
            if public.scheme != "https" or _is_loopback(public.hostname):
                raise ValueError(
                    "PUBLIC_BASE_URL must be an https:// address Fal can reach in production "
                    f"(got {self.public_base_url!r}): Fal sends webhooks there"
                )
            if urlsplit(self.fal_jwks_url).scheme != "https":
                raise ValueError("FAL_JWKS_URL must be https:// in production")
            if not self.metrics_token:
                raise ValueError("METRICS_TOKEN is required in production (/metrics is public)")
        return self

    @property
    def libpq_database_url(self) -> str:
        return to_libpq_url(self.require_database_url())

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                "DATABASE_URL is not set (only `vidgen dev` starts a local database)"
            )
        return self.database_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
