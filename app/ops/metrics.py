"""The database-derived gauges of /metrics (jobs by status, `videos` size, ledger totals),
read when it is scraped."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.metrics import Metrics
from app.ops import metrics_repository
from app.videos.models import VideoStatus


async def refresh_from_database(metrics: Metrics, session: AsyncSession) -> None:
    counts = await metrics_repository.jobs_by_status(session)
    for status in VideoStatus:
        metrics.jobs.labels(status.value).set(counts.get(status.value, 0))
    metrics.videos_rows.set(sum(counts.values()))
    metrics.videos_bytes.set(await metrics_repository.videos_table_bytes(session))
    for kind, rows, credits in await metrics_repository.ledger_totals(session):
        metrics.ledger_rows.labels(kind).set(rows)
        metrics.ledger_credits.labels(kind).set(credits)
