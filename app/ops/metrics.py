"""Prometheus metrics (`GET /metrics`). One registry per app, so test apps don't collide.

Counters and histograms are updated as things happen; the database-derived gauges (jobs by
status, `videos` size, ledger totals) are read when /metrics is scraped.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.videos.models import VideoStatus

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

JOBS_BY_STATUS = text('SELECT "status", count(*) FROM "videos" GROUP BY "status"')
VIDEOS_BYTES = text("SELECT pg_total_relation_size('\"videos\"')")
LEDGER_TOTALS = text(
    'SELECT "kind", count(*), COALESCE(sum("amount"), 0) FROM "creditTransactions" GROUP BY "kind"'
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "vidgen_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "vidgen_http_request_duration_seconds", "HTTP request latency",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.jobs = Gauge("vidgen_jobs", "Video jobs by status", ["status"], registry=r)
        self.videos_bytes = Gauge(
            "vidgen_videos_table_bytes", "videos table size incl. indexes", registry=r
        )
        self.videos_rows = Gauge("vidgen_videos_rows", "Rows in videos", registry=r)
        self.ledger_rows = Gauge("vidgen_ledger_rows", "Ledger rows by kind", ["kind"], registry=r)
        self.ledger_credits = Gauge(
            "vidgen_ledger_credits", "Sum of ledger amounts by kind", ["kind"], registry=r
        )
        self.fal_submit_seconds = Histogram(
            "vidgen_fal_submit_duration_seconds", "Fal submit latency",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.fal_errors = Counter(
            "vidgen_fal_errors", "Fal call failures", ["call", "retryable"], registry=r
        )
        self.webhooks = Counter(
            "vidgen_fal_webhooks", "Fal webhooks by outcome", ["outcome"], registry=r
        )
        self.reconciler_actions = Counter(
            "vidgen_reconciler_actions", "Reconciler actions", ["action"], registry=r
        )

    async def refresh_from_database(self, session: AsyncSession) -> None:
        counts = {row[0]: row[1] for row in await session.execute(JOBS_BY_STATUS)}
        for status in VideoStatus:
            self.jobs.labels(status.value).set(counts.get(status.value, 0))
        self.videos_rows.set(sum(counts.values()))
        self.videos_bytes.set((await session.execute(VIDEOS_BYTES)).scalar_one())
        for kind, rows, credits in await session.execute(LEDGER_TOTALS):
            self.ledger_rows.labels(kind).set(rows)
            self.ledger_credits.labels(kind).set(credits)
