import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from app.catalog.service import ModelNotFound
from app.core import ratelimit
from app.core.deps import (
    DbDep,
    DriverTransactionDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
)
from app.core.errors import Unauthorized, problem_responses
from app.core.idempotency import IDEMPOTENCY_ERRORS, IdempotencyKey, KeyedRequest
from app.core.pagination import InvalidCursor
from app.core.ratelimit import RateLimited
from app.credits.service import InsufficientCredits
from app.users.deps import CurrentUser
from app.videos import repository, service
from app.videos.dispatch import Dispatcher
from app.videos.models import VideoStatus
from app.videos.schemas import Quote, VideoCreate, VideoPublic, VideosPage
from app.videos.state import is_terminal
from app.videos.validation import VALIDATION_ERRORS

router = APIRouter(tags=["videos"])


async def create_allowance(request: Request, user: CurrentUser, db: DbDep) -> None:
    """One of the caller's create tokens (RATE_LIMIT_CREATES_PER_MINUTE), before any work."""
    per_minute = request.app.state.settings.rate_limit_creates_per_minute
    await ratelimit.take(db.driver, "create", user.id, per_minute)


async def quote_allowance(request: Request, user: CurrentUser, db: DbDep) -> None:
    per_minute = request.app.state.settings.rate_limit_quotes_per_minute
    await ratelimit.take(db.driver, "quote", user.id, per_minute)


CreateAllowance = Annotated[None, Depends(create_allowance)]
QuoteAllowance = Annotated[None, Depends(quote_allowance)]
# One server-sent event: `event: status`, `id`, and `data` holding a VideoPublic as JSON.
SSE_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "const": "status"},
        "id": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["data"],
}


@router.post(
    "/api/videos",
    status_code=202,
    response_model=VideoPublic,
    responses=problem_responses(
        Unauthorized,
        RateLimited,
        ModelNotFound,
        InsufficientCredits,
        service.TooManyActiveJobs,
        *VALIDATION_ERRORS,
        *IDEMPOTENCY_ERRORS,
    ),
)
async def create_video(
    body: VideoCreate,
    request: Request,
    user: CurrentUser,
    _allowed: CreateAllowance,
    idempotency_key: IdempotencyKey,
    transaction: DriverTransactionDep,
    background: BackgroundTasks,
) -> Response:
    """Charge for and queue a video. Retries with the same Idempotency-Key replay the answer."""
    keyed = KeyedRequest.of(request, scope=f"user:{user.id}", key=idempotency_key, body=body)
    outcome, video_id = await service.create_video(
        transaction, request.app.state.models, user.id, body,
        keyed=keyed, settings=request.app.state.settings,
    )  # fmt: skip
    dispatcher: Dispatcher | None = request.app.state.dispatcher
    if video_id is not None and dispatcher is not None:
        # Runs after the response, hence after the commit: the pending row is the outbox, and
        # if this process dies first, the reconciler submits it.
        background.add_task(dispatcher.submit, video_id)
    return outcome.response()


@router.post(
    "/api/videos/quote",
    response_model=Quote,
    response_model_exclude_none=True,
    responses=problem_responses(Unauthorized, RateLimited, ModelNotFound, *VALIDATION_ERRORS),
)
async def quote_video(
    body: VideoCreate, request: Request, _user: CurrentUser, _allowed: QuoteAllowance, db: DbDep
) -> Quote:
    """The credits a create with this body would charge, and the options it would run with.

    Takes exactly the create body, without an Idempotency-Key; writes and charges nothing.
    """
    return await service.quote_video(
        db.driver, request.app.state.models, body, request.app.state.settings
    )


@router.get(
    "/api/videos",
    response_model=VideosPage,
    responses=problem_responses(Unauthorized, InvalidCursor),
)
async def list_videos(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status: VideoStatus | None = None,
) -> VideosPage:
    """The caller's videos, newest first; follow `next_cursor` for the next page."""
    return await service.list_videos(session, user.id, limit=limit, cursor=cursor, status=status)


@router.get(
    "/api/videos/{video_id}",
    response_model=VideoPublic,
    responses=problem_responses(Unauthorized, service.VideoNotFound),
)
async def get_video(video_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> VideoPublic:
    return await service.get_video(session, user.id, video_id)


@router.post(
    "/api/videos/{video_id}/cancel",
    response_model=VideoPublic,
    responses=problem_responses(Unauthorized, service.VideoNotFound, service.VideoNotCancelable),
)
async def cancel_video(
    video_id: uuid.UUID,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    background: BackgroundTasks,
) -> VideoPublic:
    """Cancel a job that has not finished; its credits are refunded once."""
    video, row = await service.cancel_video(session, user.id, video_id)
    dispatcher: Dispatcher | None = request.app.state.dispatcher
    if row.fal_request_id and dispatcher is not None:
        endpoint = await service.fal_endpoint_of(session, row)
        background.add_task(dispatcher.cancel_quietly, endpoint, row.fal_request_id)
    return video


@router.get(
    "/api/videos/{video_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
            "description": "`event: status` with the video JSON on every change, until terminal",
        },
        **problem_responses(Unauthorized, service.VideoNotFound),
    },
)
async def video_events(
    video_id: uuid.UUID, user: CurrentUser, sessions: SessionmakerDep, settings: SettingsDep
) -> StreamingResponse:
    """Server-sent events of the video's status changes; ends once it is terminal.

    Reads the row (not process memory), so changes made by any replica show up.
    """
    async with sessions() as session:
        await service.get_video(session, user.id, video_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        last: str | None = None
        while True:
            async with sessions() as session:
                found = await repository.get_for_user(session, video_id, user.id)
            if found is None:
                return
            video = VideoPublic.of(*found)
            payload = video.model_dump_json()
            if payload != last:
                yield f"event: status\nid: {video.updated_at.isoformat()}\ndata: {payload}\n\n"
                last = payload
            if is_terminal(video.status):
                return
            await asyncio.sleep(settings.events_poll_interval_s)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
