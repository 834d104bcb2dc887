"""Video jobs: creation (charge + outbox row in one transaction), reads, and every status change.

All status changes go through `change_status`, which applies the state machine with a
conditional UPDATE and writes the refund for `failed` / `canceled` in the same transaction;
webhooks run the same statement (repository.FINISH) keyed by Fal's request id.

Creating a video and ingesting a webhook are the hot paths: they run on the asyncpg driver
in a handful of statements (app/core/sql.py says why); the rest uses the SQLAlchemy session.
"""

import json
import uuid
from dataclasses import dataclass, replace
from typing import Any, Literal

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import service as catalog
from app.catalog.pricing import credits_for
from app.core import ratelimit
from app.core.columns import utcnow
from app.core.config import Settings
from app.core.errors import AppError, NotFound
from app.core.idempotency import (
    IdempotencyKeyReused,
    KeyedRequest,
    Outcome,
    in_flight,
    replay_on_driver,
)
from app.core.pagination import decode_cursor, encode_cursor
from app.credits.service import InsufficientCredits
from app.fal.results import FalOutcome
from app.users.service import UserNotFound
from app.videos import images, repository
from app.videos.models import EventSource, Video, VideoStatus
from app.videos.schemas import (
    OPTION_FIELDS,
    UPLOAD_SCHEME,
    Links,
    Quote,
    VideoCreate,
    VideoPublic,
    VideosPage,
)
from app.videos.state import ALLOWED_FROM, TERMINAL
from app.videos.validation import NormalisedRequest, normalise


class VideoNotFound(NotFound):
    code, title = "video_not_found", "Video not found"


class VideoNotCancelable(AppError):
    status, code, title = 409, "video_not_cancelable", "Video already finished"


class VideoNotDeletable(AppError):
    status, code, title = 409, "video_not_deletable", "Video still running"


class UploadNotFound(AppError):
    status, code, title = 422, "upload_not_found", "No such upload"


class TooManyActiveJobs(AppError):
    status, code, title = 429, "too_many_active_jobs", "Too many active jobs"


# The new row's columns that are the response's fields as they are (repository.CREATE).
STORED_AS_ASKED: set[str] = {
    "id", "kind", "prompt", "negative_prompt", "image_url", "duration", "aspect_ratio",
    "resolution", "seed",
}  # fmt: skip


@dataclass(frozen=True)
class PricedRequest:
    offer: catalog.Offer
    request: NormalisedRequest
    credits: int


def price_request(offer: catalog.Offer, body: VideoCreate, settings: Settings) -> PricedRequest:
    """Check `body` against its model and price it: what a quote says and a create charges."""
    request = normalise(body, offer.spec, settings.max_data_uri_bytes)
    credits = credits_for(
        offer.spec,
        request.options,
        margin_percent=settings.price_margin_percent,
        credit_usd=catalog.credit_usd(),
    )
    return PricedRequest(offer, request, credits)


async def quote_video(
    driver: asyncpg.Connection, models: catalog.ActiveModels, body: VideoCreate, settings: Settings
) -> Quote:
    """The price and normalised options of a create with this body; writes nothing."""
    priced = price_request(await models.get(driver, body.model), body, settings)
    options = priced.request.options
    return Quote(
        credits=priced.credits,
        model=priced.offer.spec.slug,
        kind=priced.offer.spec.kind,
        **{name: options[name] for name in OPTION_FIELDS if name in options},
    )


async def create_video(
    driver: asyncpg.Connection,
    models: catalog.ActiveModels,
    user_id: uuid.UUID,
    request: VideoCreate,
    *,
    keyed: KeyedRequest,
    settings: Settings,
    links: Links,
) -> tuple[Outcome, uuid.UUID | None]:
    """Charge for and queue a video once per Idempotency-Key: one statement, outside any
    transaction block on `driver` (repository.CREATE says how it keeps every guarantee).

    Returns the answer and the new video's id (None when the answer is a replay). Keeps: one
    debit per video (its ledger key derives from the video id); never a charge without a job
    row, never a job row without its charge; the per-user active-job cap and rate limit.
    A retry of a request that was answered replays that answer, whatever has changed since
    (the catalog, the balance, the limits).
    """
    try:
        priced = price_request(await models.get(driver, request.model), request, settings)
    except AppError:
        # Checked again on every retry: a model retired since must not hide the answer given.
        if replayed := await replay_on_driver(driver, keyed):
            return replayed, None
        raise
    image_url = priced.request.image_url
    bucket = ratelimit.Bucket("create", user_id, settings.rate_limit_creates_per_minute)
    if image_url is None or not image_url.startswith("data:"):
        return await _charge_and_insert(driver, user_id, priced, keyed, settings, links, bucket)
    # A `data:` image is stored as an upload first: no image inside a row or a response.
    # Only a request not answered yet, and within its rate limit, gets that far (decoding is
    # the costliest thing a create does), and the image goes again if no job is made of it.
    if replayed := await replay_on_driver(driver, keyed):
        return replayed, None
    await ratelimit.take(driver, bucket)
    stored = await images.store_data_uri(driver, links.store, user_id, image_url)
    priced = replace(priced, request=replace(priced.request, image_url=stored.image_url))
    try:
        outcome, video_id = await _charge_and_insert(
            driver, user_id, priced, keyed, settings, links, replace(bucket, per_minute=0)
        )
    except BaseException:
        await images.discard(driver, links.store, stored)
        raise
    if video_id is None:  # another request with this key was answered first
        await images.discard(driver, links.store, stored)
    return outcome, video_id


def upload_of(image_url: str | None) -> uuid.UUID | None:
    """The upload an `image_url` of the form `upload:<id>` names (validation checked the id)."""
    if image_url is None or not image_url.startswith(UPLOAD_SCHEME):
        return None
    return uuid.UUID(image_url.removeprefix(UPLOAD_SCHEME))


# A create refused for no reason its owner's row shows any more (a job finished, credits
# arrived between the statement and the look) is run again, at most this many times.
CREATE_ATTEMPTS = 3


async def _charge_and_insert(
    driver: asyncpg.Connection,
    user_id: uuid.UUID,
    priced: PricedRequest,
    keyed: KeyedRequest,
    settings: Settings,
    links: Links,
    bucket: ratelimit.Bucket,
) -> tuple[Outcome, uuid.UUID | None]:
    model, request, price = priced.offer.model, priced.request, priced.credits
    now, video_id = utcnow(), uuid.uuid4()
    video = VideoPublic(
        id=video_id,
        status=VideoStatus.PENDING,
        model=model.slug,
        kind=model.kind,
        prompt=request.prompt,
        negative_prompt=request.option("negative_prompt"),
        image_url=request.image_url,
        duration=request.option("duration"),
        aspect_ratio=request.option("aspect_ratio"),
        resolution=request.option("resolution"),
        seed=request.option("seed"),
        options=request.options,
        credits_charged=price,
        queue_position=None,
        video=None,
        error=None,
        created_at=now,
        updated_at=now,
        completed_at=None,
        urls=links.of_video(video_id),
    )
    response = video.model_dump_json()
    upload_id = upload_of(request.image_url)
    params = {
        **video.model_dump(include=STORED_AS_ASKED),
        "options": json.dumps(request.options),
        "user_id": user_id,
        "upload_id": upload_id,
        "max_active": settings.max_active_jobs_per_user,
        "amount": -price,
        "model_id": model.id,
        "now": now,
        "reason": f"video {model.slug} {video.duration}s",
        "scope": keyed.scope,
        "idempotency_key": keyed.key,
        "method": keyed.method,
        "path": keyed.path,
        "fingerprint": keyed.fingerprint,
        "wait_ms": str(int(settings.idempotency_wait_s * 1000)),
        "response": response,
    }
    rate_limited = bucket.enabled
    for _ in range(CREATE_ATTEMPTS):
        try:
            if rate_limited:
                params |= bucket.params()
            created = await repository.create(driver, rate_limited=rate_limited, **params)
        except asyncpg.UniqueViolationError:
            # The key was used before: that request's answer (repository.CREATE).
            if replayed := await replay_on_driver(driver, keyed):
                return replayed, None
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used for another video; use a new key"
            ) from None
        except asyncpg.LockNotAvailableError as error:
            raise in_flight() from error
        if created["created"]:
            return Outcome(202, response, replayed=False), video.id
        # Refused: a retry of an answered request replays it; otherwise say why.
        if replayed := await replay_on_driver(driver, keyed):
            return replayed, None
        if rate_limited and not created["allowed"]:
            raise bucket.refusal(created["tokens"])
        owner = await repository.why_not_created(driver, user_id, upload_id)
        _raise_why_not_created(owner, user_id, upload_id, price, settings)
        rate_limited = False  # the token is spent: a second attempt takes none
    raise InsufficientCredits(
        f"this needs {price} credits; the account changed while the create was checked, retry"
    )


def _raise_why_not_created(
    owner: asyncpg.Record | None,
    user_id: uuid.UUID,
    upload_id: uuid.UUID | None,
    price: int,
    settings: Settings,
) -> None:
    """Raise the reason a create was refused, as the owner's row shows it now; return when it
    shows none (the create may be tried again)."""
    if owner is None:
        raise UserNotFound(f"no user with id {user_id}")
    if not owner["upload_owned"]:
        raise UploadNotFound(f"you have no upload {upload_id} (image_url)")
    if owner["active_jobs"] >= settings.max_active_jobs_per_user:
        raise TooManyActiveJobs(
            f"{owner['active_jobs']} jobs are still running; the limit is "
            f"{settings.max_active_jobs_per_user}. Wait for one to finish or cancel one.",
            headers={"Retry-After": "10"},
        )
    if owner["balance"] < price:
        raise InsufficientCredits(f"this needs {price} credits; the balance is {owner['balance']}")


# What a move into a terminal state may record besides the status (repository.FINISH).
FINISH_VALUES = frozenset(
    {"video_url", "video_metadata", "error_code", "error_message", "last_event_at"}
)


def _finish_params(target: VideoStatus, source: EventSource, **values: Any) -> dict[str, Any]:
    metadata = values.get("video_metadata")
    return {
        "status": target,
        "source": source,
        "allowed_from": sorted(ALLOWED_FROM[target]),
        "video_url": values.get("video_url"),
        "video_metadata": None if metadata is None else json.dumps(metadata),
        "error_code": values.get("error_code"),
        "error_message": values.get("error_message"),
        "last_event_at": values.get("last_event_at"),
        "now": utcnow(),
    }


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
    or `canceled` refunds the charge in this same transaction (repository.FINISH); a
    `canceling` job told to fail ends `canceled`.
    """
    if target in TERMINAL:
        unknown = values.keys() - FINISH_VALUES
        assert not unknown, f"a terminal status change does not set {unknown}"
        return await repository.finish(
            session, video_id, **_finish_params(target, source, **values)
        )
    video = await repository.update_if_status(
        session, video_id, ALLOWED_FROM[target], status=target, **values
    )
    if video is not None:
        await repository.record_event(session, video_id, target, source)
    return video


async def get_video(
    session: AsyncSession, user_id: uuid.UUID, video_id: uuid.UUID, links: Links
) -> VideoPublic:
    found = await repository.get_for_user(session, video_id, user_id)
    if found is None:
        raise VideoNotFound(f"no video {video_id}")
    return VideoPublic.of(*found, links)


CANCELED_BY_USER = {"error_code": "canceled", "error_message": "canceled at the user's request"}


async def cancel_video(
    session: AsyncSession, user_id: uuid.UUID, video_id: uuid.UUID, links: Links
) -> tuple[VideoPublic, Video]:
    """Cancel a job that has not finished; a finished one is a 409.

    Before Fal runs it (pending, queued): canceled and refunded now. While Fal runs it:
    `canceling` until Fal's final word (app/videos/state.py). Canceling twice is harmless.
    """
    found = await repository.get_for_user(session, video_id, user_id)
    if found is None:
        raise VideoNotFound(f"no video {video_id}")
    video = await change_status(
        session, video_id, VideoStatus.CANCELED, EventSource.API, **CANCELED_BY_USER
    )
    if video is None:  # Fal is running it (or it has finished)
        video = await change_status(session, video_id, VideoStatus.CANCELING, EventSource.API)
    if video is None:
        video = await repository.get(session, video_id)
        if video is None or video.status != VideoStatus.CANCELING:
            status = video.status if video else "unknown"
            raise VideoNotCancelable(f"video {video_id} is already {status}")
    return VideoPublic.of(video, found[1], links), video


async def delete_media(session: AsyncSession, user_id: uuid.UUID, video_id: uuid.UUID) -> list[str]:
    """Forget a finished video's media; the keys of the files to remove once committed.

    The row and its ledger rows stay: money history is never deleted. Deleting twice is
    harmless (nothing left to remove).
    """
    found = await repository.get_for_user(session, video_id, user_id)
    if found is None:
        raise VideoNotFound(f"no video {video_id}")
    video = found[0]
    if video.status not in TERMINAL:
        raise VideoNotDeletable(
            f"video {video_id} is {video.status}; cancel it, or wait for it to finish"
        )
    return await repository.forget_media(session, video_id, utcnow())


async def list_videos(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    status: VideoStatus | None,
    links: Links,
) -> VideosPage:
    rows = await repository.list_page_for_user(
        session, user_id, limit=limit, after=decode_cursor(cursor), status=status
    )
    page, more = rows[:limit], len(rows) > limit
    last = page[-1][0] if page else None
    return VideosPage(
        data=[VideoPublic.of(video, slug, links) for video, slug in page],
        next_cursor=encode_cursor(last.created_at, last.id) if more and last else None,
    )


# Fal's output is ours to copy from the moment it is reported: these are the statuses it may
# be recorded in (repository.RECORD_OUTPUT_*), by a webhook or a poll.
OUTPUT_FROM = sorted({VideoStatus.QUEUED, VideoStatus.PROCESSING, VideoStatus.CANCELING})


def _output_params(outcome: FalOutcome, source: EventSource) -> dict[str, Any]:
    metadata = outcome.video_metadata
    return {
        "video_url": outcome.video_url,
        "video_metadata": None if metadata is None else json.dumps(metadata),
        "last_event_at": utcnow(),
        "allowed_from": OUTPUT_FROM,
        "source": source,
        "now": utcnow(),
    }


def _failure(outcome: FalOutcome) -> dict[str, Any]:
    return {
        "error_code": outcome.error_code,
        "error_message": outcome.error_message,
        "last_event_at": utcnow(),
    }


async def finish_from_fal(
    session: AsyncSession, video_id: uuid.UUID, outcome: FalOutcome, source: EventSource
) -> bool:
    """Record Fal's final word: its output, to be copied (app/videos/finalise.py) before the
    job completes, or its failure (failed and refunded).

    False when the job had already moved on: duplicates and late deliveries change nothing.
    """
    if outcome.succeeded:
        return await repository.record_output(session, video_id, **_output_params(outcome, source))
    failed = await change_status(session, video_id, VideoStatus.FAILED, source, **_failure(outcome))
    return failed is not None


@dataclass(frozen=True)
class StoredMedia:
    """Our published copy of a job's output, as FINISH_WITH_MEDIA records it."""

    media_key: str
    poster_key: str
    media_content_type: str
    media_size_bytes: int
    media_sha256: str
    media_width: int
    media_height: int
    media_duration_s: float


async def complete_with_media(
    session: AsyncSession, video: Video, media: StoredMedia
) -> Video | None:
    """The job completes with our copy of the output it was waiting for; None when it has
    ended meanwhile (past its deadline: failed and refunded) and the copy is not needed."""
    params = _finish_params(
        VideoStatus.COMPLETED,
        EventSource.COPY,
        video_url=video.video_url,
        video_metadata=video.video_metadata,
        last_event_at=utcnow(),
    )
    return await repository.finish_with_media(session, video.id, **params, **vars(media))


async def finish_by_fal_request(
    driver: asyncpg.Connection,
    fal_request_id: str,
    outcome: FalOutcome,
    video_id: uuid.UUID | None = None,
) -> Literal["applied", "adopted", "duplicate", "unknown"]:
    """A webhook's outcome for the job Fal knows as `fal_request_id`: one statement.

    `video_id` (from the webhook URL) lets a job whose submit answer was lost be found: a
    pending video without a request id adopts this one and takes the outcome, in the
    same one statement.
    """
    if outcome.succeeded:
        params = _output_params(outcome, EventSource.WEBHOOK)
        record, adopt = repository.record_output_by_fal_request, repository.record_output_adopting
    else:
        params = _finish_params(VideoStatus.FAILED, EventSource.WEBHOOK, **_failure(outcome))
        record, adopt = repository.finish_by_fal_request, repository.finish_adopting
    if await record(driver, fal_request_id, **params):
        return "applied"
    if await repository.fal_request_known(driver, fal_request_id):
        return "duplicate"
    if video_id is not None:
        adopting = params | {"allowed_from": [VideoStatus.PENDING]}
        if await adopt(driver, video_id, fal_request_id, **adopting):
            return "adopted"
    return "unknown"


async def jobs_by_model_and_status(session: AsyncSession) -> dict[str, dict[str, int]]:
    """{model slug: {status: jobs}}, for operators (`vidgen models status`)."""
    return await repository.count_by_model_and_status(session)


async def fal_endpoint_of(session: AsyncSession, video: Video) -> str:
    model = await catalog.get_by_id(session, video.model_id)
    return model.fal_endpoint
