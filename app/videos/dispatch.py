"""Talking to Fal about our jobs: submission of `pending` rows and polling of quiet ones.

Each function leases its rows in one short transaction, talks to Fal outside any
transaction, then records what it learned in another. A crash in between leaves a lease
that expires, and the reconciler picks the row up again.
"""

import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.catalog import service as catalog
from app.catalog.models import CatalogModel
from app.core.columns import utcnow
from app.core.config import Settings
from app.core.db import unit_of_work
from app.fal import results
from app.fal.client import FalError, FalGateway
from app.media.store import MediaStore
from app.videos import repository, service, uploads_repository
from app.videos.models import EventSource, Video, VideoStatus

logger = logging.getLogger(__name__)


def fal_arguments(
    video: Video, model: CatalogModel, image_url: str | None = None
) -> dict[str, Any]:
    """The model input Fal expects: the video's normalised options in Fal's types.

    `image_url` replaces the video's own (an upload of ours, as a URL Fal can fetch).
    """
    spec = catalog.spec_of(model)
    if spec is None:
        raise ValueError(f"model {model.slug} has no spec; run `vidgen models sync`")
    options = video.options
    if options is None:  # a row from before options were stored: its columns say it all
        legacy = {
            "duration": video.duration,
            "negative_prompt": video.negative_prompt,
            "aspect_ratio": video.aspect_ratio,
            "resolution": video.resolution,
            "seed": video.seed,
        }
        options = spec.defaults() | {
            k: v for k, v in legacy.items() if v is not None and k in spec.parameters
        }
    return spec.fal_input(video.prompt, image_url or video.image_url, options)


async def _model(session: AsyncSession, video: Video) -> CatalogModel:
    return await catalog.get_by_id(session, video.model_id)


class Dispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        gateway: FalGateway,
        settings: Settings,
        media: MediaStore,
    ) -> None:
        self.sessions = sessions
        self.gateway = gateway
        self.settings = settings
        self.media = media

    async def submit(self, video_id: uuid.UUID | None = None) -> int:
        """Submit one pending job (`video_id`) or a batch of due ones; return how many.

        The lease is the uncertain-submit grace: if this process dies mid-submit, Fal may have
        the job, and its webhook (whose URL names the video) has that long to arrive and be
        adopted before the row is submitted again.
        """
        async with unit_of_work(self.sessions) as session:
            claimed = await repository.claim_pending(
                session,
                lease_s=self.settings.submit_uncertain_grace_s,
                limit=self.settings.reconcile_batch,
                video_id=video_id,
            )
        for video in claimed:
            # Each job on its own, after the claim committed: a row nothing can be made of
            # (one written by another app sharing the table) is logged and left to its lease
            # and deadline, and never holds up the others.
            try:
                async with self.sessions() as session:
                    model = await _model(session, video)
                    image_url = await self._image_for_fal(session, video)
                await self._submit_one(video, model, image_url)
            except Exception:
                logger.exception("submitting video %s failed", video.id)
        return len(claimed)

    async def _image_for_fal(self, session: AsyncSession, video: Video) -> str | None:
        """For an `upload:<id>` image, a signed URL of our copy that Fal can fetch (through
        PUBLIC_BASE_URL, or the bucket's), valid until the job's deadline; else None."""
        upload_id = service.upload_of(video.image_url)
        if upload_id is None:
            return None
        key = await uploads_repository.key_of(session, upload_id)
        if key is None:
            return None  # Fal refuses the reference, and the job fails with its reason
        ttl = max(self.settings.media_url_ttl_s, int(self.settings.job_deadline_s))
        return self.media.url(key, ttl)

    async def _submit_one(
        self, video: Video, model: CatalogModel, image_url: str | None = None
    ) -> None:
        try:
            arguments = fal_arguments(video, model, image_url)
            request_id = await self.gateway.submit(model.fal_endpoint, arguments, video.id)
        except FalError as error:
            await self._submit_failed(video, error)
            return
        async with unit_of_work(self.sessions) as session:
            queued = await service.change_status(
                session,
                video.id,
                VideoStatus.QUEUED,
                EventSource.DISPATCH,
                fal_request_id=request_id,
                last_event_at=utcnow(),
                next_attempt_at=None,
            )
        if queued is None:
            # Canceled (or timed out) while we were submitting: stop the work we just started.
            logger.info("video %s ended during submit; canceling Fal %s", video.id, request_id)
            await self.cancel_quietly(model.fal_endpoint, request_id)

    async def _submit_failed(self, video: Video, error: FalError) -> None:
        attempts = video.submit_attempts
        logger.warning("submit of video %s failed (attempt %d): %s", video.id, attempts, error)
        if error.maybe_accepted:
            # Fal may be running it: wait for its webhook rather than start a second paid job.
            # The claim's lease already holds the row for the grace period; say so explicitly.
            grace = timedelta(seconds=self.settings.submit_uncertain_grace_s)
            async with unit_of_work(self.sessions) as session:
                await repository.set_fields(session, video.id, next_attempt_at=utcnow() + grace)
            return
        give_up = not error.retryable or attempts >= self.settings.submit_max_attempts
        async with unit_of_work(self.sessions) as session:
            if give_up:
                refused = results.from_error(
                    str(error), error.body, error.error_type, error.status_code
                )
                await service.change_status(
                    session,
                    video.id,
                    VideoStatus.FAILED,
                    EventSource.DISPATCH,
                    error_code=refused.error_code,
                    error_message=f"{refused.error_message} (after {attempts} attempt(s))",
                )
            else:
                backoff = self.settings.submit_backoff_s * 2 ** (attempts - 1)
                await repository.set_fields(
                    session, video.id, next_attempt_at=utcnow() + timedelta(seconds=backoff)
                )

    async def cancel_quietly(self, endpoint: str, request_id: str) -> None:
        try:
            await self.gateway.cancel(endpoint, request_id)
        except FalError as error:
            logger.warning("Fal cancel of %s failed: %s", request_id, error)

    async def poll_stale(self) -> int:
        """Ask Fal about jobs whose webhook is late; record what it says."""
        async with unit_of_work(self.sessions) as session:
            claimed = await repository.claim_stale(
                session,
                quiet_s=self.settings.poll_after_s,
                lease_s=self.settings.claim_lease_s,
                limit=self.settings.reconcile_batch,
            )
            jobs = [(video, await _model(session, video)) for video in claimed]
        for video, model in jobs:
            try:
                await self._poll_one(video, model)
            except FalError as error:
                logger.warning("polling video %s failed: %s", video.id, error)
                if not error.retryable:  # Fal no longer knows the request
                    lost = results.provider_error(f"Fal no longer knows the request: {error}")
                    await self._finish(video.id, lost, EventSource.POLL)
            except Exception:  # this job's step only: the lease brings it back next time
                logger.exception("polling video %s failed", video.id)
        return len(jobs)

    async def _poll_one(self, video: Video, model: CatalogModel) -> None:
        assert video.fal_request_id is not None
        status = await self.gateway.status(model.fal_endpoint, video.fal_request_id)
        if status.state == "completed":
            await self._finish(video.id, await self._final_word(video, model), EventSource.POLL)
            return
        async with unit_of_work(self.sessions) as session:
            news = {"last_event_at": utcnow(), "next_attempt_at": None}
            if status.state == "in_progress":
                moved = await service.change_status(
                    session, video.id, VideoStatus.PROCESSING, EventSource.POLL,
                    queue_position=None, **news,
                )  # fmt: skip
                if moved is None:
                    await repository.set_fields(session, video.id, **news)
            else:
                await repository.set_fields(
                    session, video.id, queue_position=status.queue_position, **news
                )

    async def _final_word(self, video: Video, model: CatalogModel) -> results.FalOutcome:
        """A completed request's outcome, from its result: the output, or Fal's own error.

        The result of a failed request answers with the model's status code and body, which
        say why it failed (content policy, invalid input) better than the status does.
        """
        assert video.fal_request_id is not None
        try:
            output = await self.gateway.result(model.fal_endpoint, video.fal_request_id)
        except FalError as error:
            if error.status_code is None:  # no answer at all: ask again on the next pass
                raise
            return results.from_error(str(error), error.body, error.error_type, error.status_code)
        return results.from_output(output)

    async def _finish(
        self, video_id: uuid.UUID, outcome: results.FalOutcome, source: EventSource
    ) -> None:
        async with unit_of_work(self.sessions) as session:
            await service.finish_from_fal(session, video_id, outcome, source)

    async def fail_overdue(self) -> int:
        """Fail (and refund) jobs past the deadline, then stop them at Fal.

        Each job in its own transaction: one that cannot be finished is logged and skipped
        (its lease brings it back), never holding up the others.
        """
        async with unit_of_work(self.sessions) as session:
            claimed = await repository.claim_overdue(
                session,
                deadline_s=self.settings.job_deadline_s,
                lease_s=self.settings.claim_lease_s,
                limit=self.settings.reconcile_batch,
            )
        for video in claimed:
            try:
                async with unit_of_work(self.sessions) as session:
                    failed = await service.change_status(
                        session,
                        video.id,
                        VideoStatus.FAILED,
                        EventSource.DEADLINE,
                        error_code="timeout",
                        error_message=f"not finished within {self.settings.job_deadline_s:g}s",
                    )
                    model = await _model(session, video)
            except Exception:
                logger.exception("failing overdue video %s failed", video.id)
                continue
            if failed is not None and failed.fal_request_id:
                await self.cancel_quietly(model.fal_endpoint, failed.fal_request_id)
        return len(claimed)
