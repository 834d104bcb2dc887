"""The gauges of /metrics, set when it is scraped: what the database and BACKUP_DIR say.

What one scrape costs, whatever the size of the tables:
- `vidgen_database_up`: a `SELECT 1` bounded by HEALTH_TIMEOUT_S, answered by this replica
  (a database this replica cannot reach reads 0; the scrape still answers with its counters).
- The database gauges (jobs by status, jobs past JOB_DEADLINE_S, the `videos` table's rows
  and bytes, the ledger's rows and credits by kind): one primary-key read of the single
  `metricsSnapshot` row.

The row is recomputed at most once per METRICS_REFRESH_S for the whole deployment: the first
scrape to find it stale, on any worker of any replica, takes its row lock with SKIP LOCKED and
rewrites it in the same statement (app/ops/metrics_repository.py); scrapes meanwhile read the
row as it was. The recomputation is exact: the count by status (an index-only scan of
"videos_status_idx") and the ledger's totals by kind are the two full aggregates, about 0.3 s
of one core together at 1M rows each (1 % of a core at the default 30 s) and linear in the
rows, so at tens of millions of rows raise METRICS_REFRESH_S; the overdue count walks a partial
index of active jobs only, and the table's bytes are PostgreSQL's catalog figure. `videos`
rows are the sum of the exact counts, so they cost nothing more.
`vidgen_metrics_snapshot_age_seconds` says how old the numbers are.

The ledger's totals are revenue: they are exposed only when METRICS_TOKEN guards /metrics.

`vidgen_backup_newest_age_seconds`: the newest complete backup in BACKUP_DIR (its metadata and
checksum sidecars readable, its size the one the metadata records), listed by each process at
most once per METRICS_REFRESH_S; +Inf when there is none. The full check (every byte hashed)
stays with `vidgen backup status`: it is too costly to run every interval.
"""

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.metrics import Metrics
from app.core.sql import driver_of
from app.credits.models import CreditKind
from app.ops import metrics_repository
from app.ops.backup.files import list_backups, read_expected_checksum, read_metadata
from app.ops.metrics_repository import StoredGauges
from app.videos.models import VideoStatus

logger = logging.getLogger(__name__)

# A refresh that has not finished by then is abandoned (rolled back, the row lock released):
# the scrape answers with the previous numbers within Prometheus' default 10 s scrape timeout.
SNAPSHOT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class DatabaseGauges:
    jobs: dict[str, int]
    jobs_overdue: int
    videos_bytes: int
    ledger: dict[str, tuple[int, int]]  # kind: (rows, sum of amounts)
    refreshed_at: datetime

    @classmethod
    def of(cls, stored: StoredGauges) -> "DatabaseGauges | None":
        gauges = stored.gauges
        if not gauges:  # the row as the migration made it: never computed
            return None
        return cls(
            jobs={status: int(n) for status, n in gauges["jobs"].items()},
            jobs_overdue=int(gauges["jobs_overdue"]),
            videos_bytes=int(gauges["videos_bytes"]),
            ledger={kind: (int(r), int(c)) for kind, (r, c) in gauges["ledger"].items()},
            refreshed_at=stored.refreshed_at,
        )


def newest_complete_backup(backup_dir: Path) -> datetime | None:
    """When the newest backup in `backup_dir` that looks whole was started."""
    for backup in list_backups(backup_dir):
        metadata = read_metadata(backup)
        if metadata is None or read_expected_checksum(backup) is None:
            continue
        try:
            whole = backup.path.stat().st_size == metadata.size_bytes
        except OSError:
            continue
        if whole:
            return metadata.created_at
    return None


class ScrapedGauges:
    """One app's sources for its gauges, with what it last read (one per process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database: DatabaseGauges | None = None
        self._backup_started: datetime | None = None
        self._backup_read_at = -math.inf

    async def observe(self, metrics: Metrics, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Set every gauge; never raises for an unreachable database or BACKUP_DIR."""
        up = await self._database_answers(sessions)
        metrics.database_up.set(1 if up else 0)
        if up and (gauges := await self._database_gauges(sessions)) is not None:
            self.database = gauges
        if self.database is not None:
            self._set_database_gauges(metrics, self.database)
        metrics.backup_age.set(await self._backup_age_s())

    async def _database_answers(self, sessions: async_sessionmaker[AsyncSession]) -> bool:
        try:
            async with asyncio.timeout(self.settings.health_timeout_s), sessions() as session:
                return await metrics_repository.database_answers(
                    await driver_of(await session.connection())
                )
        except Exception:  # any failure to reach the database is the answer, not an error
            return False

    async def _database_gauges(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> DatabaseGauges | None:
        try:
            async with asyncio.timeout(SNAPSHOT_TIMEOUT_S), sessions() as session:
                driver = await driver_of(await session.connection())
                stored = await metrics_repository.read_snapshot(driver, refresh_s=self.refresh_s)
                if stored is None:  # the first scrape ever
                    await metrics_repository.create_snapshot_row(driver)
                if stored is None or stored.stale:
                    fresh = await metrics_repository.refresh_snapshot_if_stale(
                        driver, refresh_s=self.refresh_s, deadline_s=self.settings.job_deadline_s
                    )
                    stored = fresh or stored
                return None if stored is None else DatabaseGauges.of(stored)
        except Exception:
            logger.warning("metrics: database gauges not read", exc_info=True)
            return None

    @property
    def refresh_s(self) -> float:
        return self.settings.metrics_refresh_s

    def _set_database_gauges(self, metrics: Metrics, gauges: DatabaseGauges) -> None:
        for status in VideoStatus:
            metrics.jobs.labels(status.value).set(gauges.jobs.get(status.value, 0))
        metrics.jobs_overdue.set(gauges.jobs_overdue)
        metrics.videos_rows.set(sum(gauges.jobs.values()))
        metrics.videos_bytes.set(gauges.videos_bytes)
        age = (datetime.now(UTC) - gauges.refreshed_at).total_seconds()
        metrics.snapshot_age.set(max(age, 0.0))
        if self.settings.metrics_token:  # revenue: never on an open /metrics
            for kind in CreditKind:
                rows, credits = gauges.ledger.get(kind.value, (0, 0))
                metrics.ledger_rows.labels(kind.value).set(rows)
                metrics.ledger_credits.labels(kind.value).set(credits)

    async def _backup_age_s(self) -> float:
        """The newest backup's age; +Inf when BACKUP_DIR holds none (the alert fires), NaN
        when this process has no BACKUP_DIR at all (an API pod without the backups volume:
        not its to judge, the alert stays quiet; the backup job's own exit status says)."""
        if not self.settings.backup_dir.is_dir():
            return math.nan
        if time.monotonic() - self._backup_read_at >= self.refresh_s:
            try:
                self._backup_started = await asyncio.to_thread(
                    newest_complete_backup, self.settings.backup_dir
                )
            except OSError:
                logger.warning("metrics: BACKUP_DIR not readable", exc_info=True)
                self._backup_started = None
            self._backup_read_at = time.monotonic()
        if self._backup_started is None:
            return math.inf
        return (datetime.now(UTC) - self._backup_started).total_seconds()
