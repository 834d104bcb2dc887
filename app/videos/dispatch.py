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
from app.videos import repository, service
from app.videos.models import EventSource, Video, VideoStatus

logger = logging.getLogger(__name__)


def fal_arguments(video: Video, model: CatalogModel) -> dict[str, Any]:
    """The model input Fal expects, spelled the way this model spells it."""
    arguments: dict[str, Any] = {
        "prompt": video.prompt,
        "duration": model.duration_format.format(n=video.duration),
    }
    optional = {
        "image_url": video.image_url,
        "negative_prompt": video.negative_prompt,
        "aspect_ratio": video.aspect_ratio,
        "resolution": video.resolution,
        "seed": video.seed,
    }
    arguments.update({k: v for k, v in optional.items() if v is not None})
    return arguments


async def _model(session: AsyncSession, video: Video) -> CatalogModel:
    return await catalog.get_by_id(session, video.model_id)


class Dispatcher:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], gateway: FalGateway, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.gateway = gateway
        self.settings = settings

    async def submit(self, video_id: uuid.UUID | None = None) -> int:
        """Submit one pending job (`video_id`) or a batch of due ones; return how many."""
        async with unit_of_work(self.sessions) as session:
            claimed = await repository.claim_pending(
                session,
                lease_s=self.settings.claim_lease_s,
                limit=self.settings.reconcile_batch,
                video_id=video_id,
            )
            jobs = [(video, await _model(session, video)) for video in claimed]
        for video, model in jobs:
            await self._submit_one(video, model)
        return len(jobs)

    async def _submit_one(self, video: Video, model: CatalogModel) -> None:
        try:
            request_id = await self.gateway.submit(model.fal_endpoint, fal_arguments(video, model))
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
        give_up = not error.retryable or attempts >= self.settings.submit_max_attempts
        logger.warning("submit of video %s failed (attempt %d): %s", video.id, attempts, error)
        async with unit_of_work(self.sessions) as session:
            if give_up:
                await service.change_status(
                    session,
                    video.id,
                    VideoStatus.FAILED,
                    EventSource.DISPATCH,
                    error_code="submit_failed",
                    error_message=f"{error} (after {attempts} attempt(s))",
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
                    await self._finish(
                        video.id,
                        results.FalOutcome(error_code="fal_request_lost", error_message=str(error)),
                        EventSource.POLL,
                    )
        return len(jobs)

    async def _poll_one(self, video: Video, model: CatalogModel) -> None:
        assert video.fal_request_id is not None
        status = await self.gateway.status(model.fal_endpoint, video.fal_request_id)
        if status.state == "completed":
            if status.error:
                outcome = results.from_error(status.error, None, status.error_type)
            else:
                output = await self.gateway.result(model.fal_endpoint, video.fal_request_id)
                outcome = results.from_output(output)
            await self._finish(video.id, outcome, EventSource.POLL)
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

    async def _finish(
        self, video_id: uuid.UUID, outcome: results.FalOutcome, source: EventSource
    ) -> None:
        async with unit_of_work(self.sessions) as session:
            await service.finish_from_fal(session, video_id, outcome, source)

    async def fail_overdue(self) -> int:
        """Fail (and refund) jobs past the deadline, then stop them at Fal."""
        async with unit_of_work(self.sessions) as session:
            claimed = await repository.claim_overdue(
                session,
                deadline_s=self.settings.job_deadline_s,
                lease_s=self.settings.claim_lease_s,
                limit=self.settings.reconcile_batch,
            )
            stopped = []
            for video in claimed:
                failed = await service.change_status(
                    session,
                    video.id,
                    VideoStatus.FAILED,
                    EventSource.DEADLINE,
                    error_code="deadline_exceeded",
                    error_message=f"not finished within {self.settings.job_deadline_s:g}s",
                )
                if failed is not None and failed.fal_request_id:
                    stopped.append((await _model(session, video), failed.fal_request_id))
        for model, request_id in stopped:
            await self.cancel_quietly(model.fal_endpoint, request_id)
        return len(claimed)
