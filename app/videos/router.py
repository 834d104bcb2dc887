import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import Response

from app.catalog.service import ModelNotFound
from app.core import ratelimit
from app.core.db import unit_of_work
from app.core.deps import (
    DriverDep,
    SessionDep,
    SessionmakerDep,
)
from app.core.errors import Unauthorized, problem_responses
from app.core.idempotency import IDEMPOTENCY_ERRORS, IdempotencyKey, KeyedRequest
from app.core.pagination import InvalidCursor
from app.core.ratelimit import RateLimited
from app.credits.service import InsufficientCredits
from app.users.deps import CurrentUser, CurrentUserOnDriver
from app.videos import service
from app.videos.dispatch import Dispatcher
from app.videos.models import VideoStatus
from app.videos.schemas import Links, Quote, VideoCreate, VideoPublic, VideosPage
from app.videos.validation import VALIDATION_ERRORS

router = APIRouter(tags=["videos"])


async def quote_allowance(request: Request, user: CurrentUserOnDriver, driver: DriverDep) -> None:
    per_minute = request.app.state.settings.rate_limit_quotes_per_minute
    await ratelimit.take(driver, ratelimit.Bucket("quote", user.id, per_minute))


async def get_links(request: Request) -> Links:
    links: Links = request.app.state.links
    return links


LinksDep = Annotated[Links, Depends(get_links)]
QuoteAllowance = Annotated[None, Depends(quote_allowance)]


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
        service.UploadNotFound,
        *VALIDATION_ERRORS,
        *IDEMPOTENCY_ERRORS,
    ),
)
async def create_video(
    body: VideoCreate,
    request: Request,
    user: CurrentUserOnDriver,
    idempotency_key: IdempotencyKey,
    driver: DriverDep,
    background: BackgroundTasks,
) -> Response:
    """Charge for and queue a video. Retries with the same Idempotency-Key replay the answer.

    Creates are limited per user (RATE_LIMIT_CREATES_PER_MINUTE): a refused one is 429."""
    keyed = KeyedRequest.of(request, scope=f"user:{user.id}", key=idempotency_key, body=body)
    # The app's state read here rather than through dependencies: on the busiest route each
    # dependency costs more (FastAPI's solving) than the attribute it returns.
    state = request.app.state
    outcome, video_id = await service.create_video(
        driver, state.models, user.id, body,
        keyed=keyed, settings=state.settings, links=state.links,
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
    body: VideoCreate,
    request: Request,
    _user: CurrentUserOnDriver,
    _allowed: QuoteAllowance,
    driver: DriverDep,
) -> Quote:
    """The credits a create with this body would charge, and the options it would run with.

    Takes exactly the create body, without an Idempotency-Key; writes and charges nothing.
    """
    return await service.quote_video(
        driver, request.app.state.models, body, request.app.state.settings
    )


@router.get(
    "/api/videos",
    response_model=VideosPage,
    responses=problem_responses(Unauthorized, InvalidCursor),
)
async def list_videos(
    user: CurrentUser,
    session: SessionDep,
    links: LinksDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status: VideoStatus | None = None,
) -> VideosPage:
    """The caller's videos, newest first; follow `next_cursor` for the next page."""
    return await service.list_videos(
        session, user.id, limit=limit, cursor=cursor, status=status, links=links
    )


@router.get(
    "/api/videos/{video_id}",
    response_model=VideoPublic,
    responses=problem_responses(Unauthorized, service.VideoNotFound),
)
async def get_video(
    video_id: uuid.UUID, user: CurrentUser, session: SessionDep, links: LinksDep
) -> VideoPublic:
    """The video; its media URLs are signed afresh on every read (MEDIA_URL_TTL_S)."""
    return await service.get_video(session, user.id, video_id, links)


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
    links: LinksDep,
    background: BackgroundTasks,
) -> VideoPublic:
    """Cancel a job that has not finished; its credits are refunded once."""
    video, row = await service.cancel_video(session, user.id, video_id, links)
    dispatcher: Dispatcher | None = request.app.state.dispatcher
    if row.fal_request_id and dispatcher is not None:
        endpoint = await service.fal_endpoint_of(session, row)
        background.add_task(dispatcher.cancel_quietly, endpoint, row.fal_request_id)
    return video


@router.delete(
    "/api/videos/{video_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(Unauthorized, service.VideoNotFound, service.VideoNotDeletable),
)
async def delete_video(
    video_id: uuid.UUID, request: Request, user: CurrentUser, sessions: SessionmakerDep
) -> Response:
    """Delete a finished video's media (the file and its poster); its URLs are cleared.

    The video and its ledger rows stay: money history is never deleted. A video still
    running is 409 `video_not_deletable` (cancel it first). Deleting twice is a 204.
    """
    async with unit_of_work(sessions) as session:
        keys = await service.delete_media(session, user.id, video_id)
    # After the commit: a failure here leaves files no row points at (`vidgen media gc`).
    await request.app.state.media.delete(keys)
    return Response(status_code=204)
