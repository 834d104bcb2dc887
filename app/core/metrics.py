"""The service's Prometheus metrics: one registry per app, so test apps don't collide.

Counters and histograms are updated as things happen, by whichever layer sees them; the
database-derived gauges are filled in when /metrics is scraped (app/ops/metrics.py).
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


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
        self.media_copies = Counter(
            "vidgen_media_copies", "Copies of Fal outputs into our storage", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.media_copied_bytes = Counter(
            "vidgen_media_copied_bytes", "Bytes of Fal outputs copied into our storage", registry=r
        )
        self.reconciler_actions = Counter(
            "vidgen_reconciler_actions", "Reconciler actions", ["action"], registry=r
        )
