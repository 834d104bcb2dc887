"""Video jobs: creation (charge + outbox row in one transaction), reads, and every status change.

All status changes go through `change_status`, which applies the state machine with a
conditional UPDATE and writes the refund for `failed` / `canceled` in the same transaction.
"""

import uuid
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import service as catalog
from app.core.columns import utcnow
from app.core.config import Settings
from app.core.errors import AppError, NotFound
from app.core.pagination import decode_cursor, encode_cursor
from app.credits import service as credits
from app.credits.models import CreditKind
from app.fal.results import FalOutcome
from app.users.models import User
from app.videos import repository
from app.videos.models import EventSource, Video, VideoStatus
from app.videos.schemas import VideoCreate, VideoPublic, VideosPage
from app.videos.state import ALLOWED_FROM, REFUNDED, TERMINAL
from app.videos.validation import normalize


class VideoNotFound(NotFound):
    code, title = "video_not_found", "Video not found"


class VideoNotCancelable(AppError):
    status, code, title = 409, "video_not_cancelable", "Video already finished"


class TooManyActiveJobs(AppError):
    status, code, title = 429, "too_many_active_jobs", "Too many active jobs"


def debit_key(video_id: uuid.UUID) -> str:
    return f"video:{video_id}:debit"


def refund_key(video_id: uuid.UUID) -> str:
    return f"video:{video_id}:refund"


async def create_video(
    session: AsyncSession,
    user: User,
    request: VideoCreate,
    *,
    idempotency_key: str,
    fingerprint: str,
    settings: Settings,
) -> VideoPublic:
    """Validate, price, then charge and insert the `pending` row together.

    Keeps: one debit per video (its ledger key derives from the video id); never a charge
    without a job row, never a job row without its charge; the per-user active-job cap.
    """
    model = await catalog.get_active(session, request.model)
    request = normalize(request, model, settings.max_data_uri_bytes)
    assert request.duration is not None  # filled in by normalize
    price = model.credits_per_second * request.duration

    active = await repository.lock_owner_and_count_active(session, user.id)
    if active >= settings.max_active_jobs_per_user:
        raise TooManyActiveJobs(
            f"{active} jobs are still running; the limit is {settings.max_active_jobs_per_user}. "
            "Wait for one to finish or cancel one.",
            headers={"Retry-After": "10"},
        )
    video = Video(
        user_id=user.id,
        model_id=model.id,
        kind=model.kind,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        image_url=request.image_url,
        duration=request.duration,
        aspect_ratio=request.aspect_ratio,
        resolution=request.resolution,
        seed=request.seed,
        credits_charged=price,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
    )
    session.add(video)
    await session.flush()  # the ledger row's "videoId" must reference an existing row
    await credits.move_credits(
        session,
        user_id=user.id,
        amount=-price,
        kind=CreditKind.DEBIT,
        idempotency_key=debit_key(video.id),
        reason=f"video {model.slug} {request.duration}s",
        video_id=video.id,
    )
    await repository.record_event(session, video.id, VideoStatus.PENDING, EventSource.API)
    return VideoPublic.of(video, model.slug)


async def change_status(
    session: AsyncSession,
    video_id: uuid.UUID,
    target: VideoStatus,
    source: EventSource,
    **values: Any,
) -> Video | None:
    """Move a video to `target` if the state machine allows it from where it is now.

    Returns the updated row, or None when the move is not allowed (already terminal, a
    duplicate, or out of order): callers treat None as a harmless no-op. A move to `failed`
    or `canceled` refunds the charge in this same transaction.
    """
    if target in TERMINAL:
        values.setdefault("completed_at", utcnow())
    video = await repository.update_if_status(
        session, video_id, ALLOWED_FROM[target], status=target, **values
    )
    if video is not None:
        await repository.record_event(session, video_id, target, source)
    if video is not None and target in REFUNDED and video.credits_charged > 0:
        await credits.move_credits(
            session,
            user_id=video.user_id,
            amount=video.credits_charged,
            kind=CreditKind.REFUND,
            idempotency_key=refund_key(video.id),
            reason=f"video {target}",
            video_id=video.id,
        )
    return video


async def get_video(session: AsyncSession, user_id: uuid.UUID, video_id: uuid.UUID) -> VideoPublic:
    found = await repository.get_for_user(session, video_id, user_id)
    if found is None:
        raise VideoNotFound(f"no video {video_id}")
    return VideoPublic.of(*found)


async def cancel_video(
    session: AsyncSession, user_id: uuid.UUID, video_id: uuid.UUID
) -> tuple[VideoPublic, Video]:
    """Cancel a running job and refund it; a finished one is a 409."""
    found = await repository.get_for_user(session, video_id, user_id)
    if found is None:
        raise VideoNotFound(f"no video {video_id}")
    video = await change_status(session, video_id, VideoStatus.CANCELED, EventSource.API)
    if video is None:
        current = await repository.get(session, video_id)
        status = current.status if current else "unknown"
        raise VideoNotCancelable(f"video {video_id} is already {status}")
    return VideoPublic.of(video, found[1]), video


async def list_videos(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    status: VideoStatus | None,
) -> VideosPage:
    rows = await repository.list_page_for_user(
        session, user_id, limit=limit, after=decode_cursor(cursor), status=status
    )
    page, more = rows[:limit], len(rows) > limit
    last = page[-1][0] if page else None
    return VideosPage(
        data=[VideoPublic.of(video, slug) for video, slug in page],
        next_cursor=encode_cursor(last.created_at, last.id) if more and last else None,
    )


async def finish_from_fal(
    session: AsyncSession, video_id: uuid.UUID, outcome: FalOutcome, source: EventSource
) -> Video | None:
    """Record Fal's final word: completed with the video, or failed (and refunded).

    None when the job had already finished: duplicates and late deliveries change nothing.
    """
    if outcome.succeeded:
        return await change_status(
            session,
            video_id,
            VideoStatus.COMPLETED,
            source,
            video_url=outcome.video_url,
            video_metadata=outcome.video_metadata,
            queue_position=None,
            last_event_at=utcnow(),
        )
    return await change_status(
        session,
        video_id,
        VideoStatus.FAILED,
        source,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        queue_position=None,
        last_event_at=utcnow(),
    )


async def finish_by_fal_request(
    session: AsyncSession, fal_request_id: str, outcome: FalOutcome
) -> Literal["applied", "duplicate", "unknown"]:
    """A webhook's outcome for the job Fal knows as `fal_request_id`."""
    video = await repository.get_by_fal_request_id(session, fal_request_id)
    if video is None:
        return "unknown"
    finished = await finish_from_fal(session, video.id, outcome, EventSource.WEBHOOK)
    return "applied" if finished is not None else "duplicate"


async def fal_endpoint_of(session: AsyncSession, video: Video) -> str:
    model = await catalog.get_by_id(session, video.model_id)
    return model.fal_endpoint
