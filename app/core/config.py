"""Settings from the environment and `.env` (README, "Configuration"). One object, read once."""

import ipaddress
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Fal calls other than submit are bounded by this many times FAL_TIMEOUT_S (app/fal/client.py).
FAL_CALL_BUDGET_FACTOR = 3
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "admin", "secret", "dev-admin-token"})


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
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # How often GET /api/videos/{id}/events re-reads the row (any replica's change shows up).
    events_poll_interval_s: float = Field(default=1.0, gt=0)

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
    # When set, GET /metrics requires `Authorization: Bearer <METRICS_TOKEN>`.
    metrics_token: str | None = None

    migrations_dir: Path = PROJECT_ROOT / "migrations"
    # Connections per worker process, opened at start-up. Requests beyond the pool queue for
    # a connection (up to DB_POOL_TIMEOUT_S, then 503): overflow connections would be opened
    # on the request path and closed after it, and that churn costs more than the wait.
    # PostgreSQL's throughput peaks at a few busy connections per core; more only adds
    # processes that compete with the app for the CPU (bench/README.md).
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout_s: float = Field(default=10.0, gt=0)
    # Models (slug, price, limits) are read from a per-process cache refreshed this often;
    # `vidgen models sync` reaches every replica within this time.
    catalog_refresh_s: float = Field(default=5.0, gt=0)
    # A request whose Idempotency-Key is held by one still running waits this long, then 409.
    idempotency_wait_s: float = Field(default=10.0, gt=0)
    # Bounds /api/health so a black-holed database answers 503 instead of hanging.
    health_timeout_s: float = Field(default=2.0, gt=0)

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
    def _refuse_unsafe_production(self) -> "Settings":
        if self.app_env not in LOCAL_ENVS:  # staging holds real users and money too
            if self.admin_token in PLACEHOLDER_SECRETS or len(self.admin_token) < 24:
                raise ValueError(
                    f"ADMIN_TOKEN must be a real secret (24+ chars) in {self.app_env.value}"
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
