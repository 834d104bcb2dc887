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
