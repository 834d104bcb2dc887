"""Every query over `videos`."""

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.catalog.models import CatalogModel
from app.core.columns import utcnow
from app.core.pagination import Position
from app.videos.models import Video, VideoStatus
from app.videos.state import ACTIVE

# Two statements on purpose: after waiting for the lock, a single `SELECT (count) ... FOR
# UPDATE` would still count with the snapshot it started with and miss the jobs the previous
# holder just committed. A fresh statement (READ COMMITTED) sees them.
LOCK_OWNER = text('SELECT 1 FROM "users" WHERE "id" = :user_id FOR UPDATE')
COUNT_ACTIVE = text(
    'SELECT count(*) FROM "videos" WHERE "userId" = :user_id AND "status" = ANY(:active)'
)


async def lock_owner_and_count_active(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Lock the user's row (concurrent creates by one user queue here, so the active-job cap
    is exact), then count their active jobs."""
    await session.execute(LOCK_OWNER, {"user_id": user_id})
    result = await session.execute(COUNT_ACTIVE, {"user_id": user_id, "active": sorted(ACTIVE)})
    count: int = result.scalar_one()
    return count


def _with_slug() -> Any:
    return select(Video, CatalogModel.slug).join(
        CatalogModel, col(CatalogModel.id) == col(Video.model_id)
    )


async def get_for_user(
    session: AsyncSession, video_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Video, str] | None:
    query = _with_slug().where(col(Video.id) == video_id, col(Video.user_id) == user_id)
    row = (await session.execute(query)).one_or_none()
    return (row[0], row[1]) if row else None


async def list_page_for_user(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    limit: int,
    after: Position | None,
    status: VideoStatus | None,
) -> list[tuple[Video, str]]:
    """Newest first on ("createdAt", id); `limit + 1` rows to tell whether more exist."""
    query = _with_slug().where(col(Video.user_id) == user_id)
    if status is not None:
        query = query.where(col(Video.status) == status)
    if after is not None:
        query = query.where(tuple_(col(Video.created_at), col(Video.id)) < tuple_(*after))
    query = query.order_by(col(Video.created_at).desc(), col(Video.id).desc()).limit(limit + 1)
    return [(row[0], row[1]) for row in await session.execute(query)]


async def update_if_status(
    session: AsyncSession,
    video_id: uuid.UUID,
    allowed_from: Iterable[str],
    **values: Any,
) -> Video | None:
    """Conditional update: applies only while the row is in one of `allowed_from`.

    The row lock taken by UPDATE serializes racing writers; the loser re-checks the status
    after the winner commits and matches nothing. That is what makes duplicate webhooks,
    polls and cancels harmless.
    """
    statement = (
        update(Video)
        .where(col(Video.id) == video_id, col(Video.status).in_(list(allowed_from)))
        .values(updated_at=utcnow(), **values)
        .returning(Video)
    )
    # populate_existing: the session may already hold this row as it was before the update.
    query = select(Video).from_statement(statement).execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def get(session: AsyncSession, video_id: uuid.UUID) -> Video | None:
    return await session.get(Video, video_id, populate_existing=True)


async def count_by_model_and_status(session: AsyncSession) -> dict[str, dict[str, int]]:
    """{model slug: {status: jobs}}."""
    query = (
        select(CatalogModel.slug, Video.status, func.count())
        .join(Video, col(Video.model_id) == col(CatalogModel.id))
        .group_by(col(CatalogModel.slug), col(Video.status))
    )
    counts: dict[str, dict[str, int]] = {}
    for slug, status, count in await session.execute(query):
        counts.setdefault(slug, {})[status] = count
    return counts


RECORD_EVENT = text(
    'INSERT INTO "videoEvents" ("videoId", "status", "source") VALUES (:video_id, :status, :source)'
)


async def record_event(
    session: AsyncSession, video_id: uuid.UUID, status: str, source: str
) -> None:
    await session.execute(RECORD_EVENT, {"video_id": video_id, "status": status, "source": source})


async def get_by_fal_request_id(session: AsyncSession, request_id: str) -> Video | None:
    query = select(Video).where(col(Video.fal_request_id) == request_id)
    return (
        await session.execute(query.execution_options(populate_existing=True))
    ).scalar_one_or_none()


# Claims lease a row by pushing "nextAttemptAt" into the future and committing: other
# workers (in any replica) skip it until the lease ends, without a transaction held open
# while we talk to Fal. SKIP LOCKED keeps concurrent claimers from queueing on each other.
CLAIM_DUE = """
    UPDATE "videos" v SET
        "nextAttemptAt" = now() + make_interval(secs => :lease_s),
        {counter} = v.{counter} + 1,
        "updatedAt" = now()
    WHERE v."id" IN (
        SELECT "id" FROM "videos"
        WHERE {condition}
          AND ("nextAttemptAt" IS NULL OR "nextAttemptAt" <= now())
        ORDER BY "createdAt"
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING v.*
"""
CLAIM_ONE_PENDING = text(
    CLAIM_DUE.format(counter='"submitAttempts"', condition='"status" = \'pending\' AND "id" = :id')
)
CLAIM_PENDING = text(
    CLAIM_DUE.format(counter='"submitAttempts"', condition="\"status\" = 'pending'")
)
CLAIM_STALE = text(
    CLAIM_DUE.format(
        counter='"pollAttempts"',
        condition="\"status\" IN ('queued', 'processing') AND \"falRequestId\" IS NOT NULL "
        'AND COALESCE("lastEventAt", "updatedAt") <= now() - make_interval(secs => :quiet_s)',
    )
)
CLAIM_OVERDUE = text(
    CLAIM_DUE.format(
        counter='"pollAttempts"',
        condition="\"status\" IN ('pending', 'queued', 'processing') "
        'AND "createdAt" <= now() - make_interval(secs => :deadline_s)',
    )
)


async def _claim(session: AsyncSession, statement: Any, **params: Any) -> list[Video]:
    query = select(Video).from_statement(statement).execution_options(populate_existing=True)
    return list((await session.execute(query, params)).scalars())


async def claim_pending(
    session: AsyncSession, *, lease_s: float, limit: int, video_id: uuid.UUID | None = None
) -> list[Video]:
    """Pending jobs due for (re)submission, leased to the caller."""
    if video_id is not None:
        return await _claim(session, CLAIM_ONE_PENDING, id=video_id, lease_s=lease_s, limit=1)
    return await _claim(session, CLAIM_PENDING, lease_s=lease_s, limit=limit)


async def claim_stale(
    session: AsyncSession, *, quiet_s: float, lease_s: float, limit: int
) -> list[Video]:
    """Queued / processing jobs we have had no news of for `quiet_s`, leased to the caller."""
    return await _claim(session, CLAIM_STALE, quiet_s=quiet_s, lease_s=lease_s, limit=limit)


async def claim_overdue(
    session: AsyncSession, *, deadline_s: float, lease_s: float, limit: int
) -> list[Video]:
    """Unfinished jobs older than the deadline."""
    return await _claim(session, CLAIM_OVERDUE, deadline_s=deadline_s, lease_s=lease_s, limit=limit)


async def set_fields(session: AsyncSession, video_id: uuid.UUID, **values: Any) -> None:
    """Bookkeeping that is not a status change (queue position, retry time, news time)."""
    await session.execute(
        update(Video).where(col(Video.id) == video_id).values(updated_at=utcnow(), **values)
    )


async def list_events(session: AsyncSession, video_id: uuid.UUID) -> list[tuple[str, str]]:
    result = await session.execute(
        text('SELECT "status", "source" FROM "videoEvents" WHERE "videoId" = :id ORDER BY "id"'),
        {"id": video_id},
    )
    return [(row[0], row[1]) for row in result]
