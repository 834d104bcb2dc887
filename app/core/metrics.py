"""The service's Prometheus metrics.

Counters and histograms are updated as things happen, by whichever layer sees them; the
gauges are set when /metrics is scraped (app/ops/metrics.py).

One process (tests, `vidgen serve` with one worker): one registry per app, so test apps
don't collide. Several worker processes (`vidgen serve --workers N` sets
PROMETHEUS_MULTIPROC_DIR, a fresh directory per server start, before the workers start):
prometheus-client's multiprocess mode. Each worker writes its values to files in that
directory and a scrape, whichever worker answers it, adds up every worker's files, so a
counter never goes down from one scrape to the next. The gauges are the same for every worker
(read from the database or BACKUP_DIR), so the most recent value of a live worker is reported.
"""

import atexit
import os
import shutil
import tempfile
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A scrape's gauges: the value set by the latest scrape of any live worker.
LATEST: Final = "livemostrecent"
# The label values each counter is given, exported at 0 from the start: a series that does not
# exist yet has no rate, so an alert on the first invalid signature or Fal error would miss it.
FAL_CALLS = ("submit", "status", "result", "cancel", "upload")
WEBHOOK_OUTCOMES = ("applied", "adopted", "duplicate", "unknown", "invalid_signature")
COPY_OUTCOMES = ("copied", "retry", "not_a_video", "unneeded", "error")
RECONCILER_ACTIONS = ("failed_overdue", "submitted", "polled")


def multiprocess_dir() -> str | None:
    """The directory every worker of this server shares, or None in one process.

    prometheus-client reads it when first imported, so it must be in the environment before
    the worker starts (app/cli/serve.py).
    """
    return os.environ.get(MULTIPROC_DIR_ENV) or None


def share_between_workers() -> str:
    """Multiprocess mode for the workers this process is about to start: a fresh, empty
    directory (under TMPDIR) named in the environment they inherit, removed when this process
    exits. Fresh per start, so no worker ever adds up a previous run's files."""
    directory = tempfile.mkdtemp(prefix="vidgen-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess_dir() is not None
        if self.multiprocess:
            # A worker leaving hands back its gauges (its counters stay in the sums).
            atexit.register(mark_process_dead, os.getpid())
        r = self.registry
        self.requests = Counter(
            "vidgen_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "vidgen_http_request_duration_seconds", "HTTP request latency",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        # Bounded: routes are the app's templates ("unmatched" for the rest), statuses few.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.jobs = Gauge(
            "vidgen_jobs", "Video jobs by status", ["status"], registry=r, multiprocess_mode=LATEST
        )
        self.jobs_overdue = Gauge(
            "vidgen_jobs_overdue", "Active jobs older than JOB_DEADLINE_S", registry=r,
            multiprocess_mode=LATEST,
        )  # fmt: skip
        self.videos_bytes = Gauge(
            "vidgen_videos_table_bytes", "videos table size incl. indexes", registry=r,
            multiprocess_mode=LATEST,
        )  # fmt: skip
        self.videos_rows = Gauge(
            "vidgen_videos_rows", "Rows in videos (PostgreSQL's statistics)", registry=r,
            multiprocess_mode=LATEST,
        )  # fmt: skip
        self.ledger_rows = Gauge(
            "vidgen_ledger_rows", "Ledger rows by kind", ["kind"], registry=r,
            multiprocess_mode=LATEST,
        )  # fmt: skip
        self.ledger_credits = Gauge(
            "vidgen_ledger_credits", "Sum of ledger amounts by kind", ["kind"], registry=r,
            multiprocess_mode=LATEST,
        )  # fmt: skip
        self.snapshot_age = Gauge(
            "vidgen_metrics_snapshot_age_seconds", "Age of the database gauges", registry=r,
            multiprocess_mode=LATEST,
        )  # fmt: skip
        self.database_up = Gauge(
            "vidgen_database_up", "1 when the database answered this scrape in time",
            registry=r, multiprocess_mode=LATEST,
        )  # fmt: skip
        self.backup_age = Gauge(
            "vidgen_backup_newest_age_seconds",
            "Age of the newest complete backup in BACKUP_DIR (+Inf: none)",
            registry=r, multiprocess_mode=LATEST,
        )  # fmt: skip
        self.fal_submit_seconds = Histogram(
            "vidgen_fal_submit_duration_seconds", "Fal submit latency",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.fal_errors = Counter(
            "vidgen_fal_errors", "Fal call failures", ["call", "retryable"], registry=r
        )
        self.webhooks = Counter(
            "vidgen_fal_webhooks", "Fal webhooks by outcome (invalid_signature: refused)",
            ["outcome"], registry=r,
        )  # fmt: skip
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
        for call in FAL_CALLS:
            for retryable in ("true", "false"):
                self.fal_errors.labels(call, retryable)
        for counter, values in (
            (self.webhooks, WEBHOOK_OUTCOMES),
            (self.media_copies, COPY_OUTCOMES),
            (self.reconciler_actions, RECONCILER_ACTIONS),
        ):
            for value in values:
                counter.labels(value)
        # Resolved once: `labels()` costs more than the increment on the busiest route.
        self.webhook_outcomes = {value: self.webhooks.labels(value) for value in WEBHOOK_OUTCOMES}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request. The labelled children are looked up in a dict of our own:
        prometheus-client's `labels()` costs more than the increment, on every request."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.request_seconds.labels(method, route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text of every worker of this server (or of this app, in one process)."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        # A fresh registry per scrape, as prometheus-client's multiprocess mode asks.
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone)  # type: ignore[no-untyped-call]
        return generate_latest(everyone)
