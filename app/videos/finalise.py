"""Finalisation: a job Fal has finished becomes `completed` only once our copy of its output
is published (docs/architecture.md, "The life of a video").

Fal's output URL is recorded by the webhook (or a poll) in one statement, and the job waits
in `processing`; this worker, never the webhook request, copies it: streamed to a staging
file while hashed, sniffed and probed (PyAV: size, duration, a poster frame), then published
to the media store, checked there, and only then recorded, completing the job. Rows are
leased like the reconciler's (`FOR UPDATE SKIP LOCKED` + "nextAttemptAt"), so any replica
may copy and a crash mid-copy only delays it until the lease ends. A failed copy is retried
with backoff; only the job's deadline fails and refunds it. An output that is not a video
(or is over MEDIA_MAX_BYTES) fails and refunds the job at once: retrying cannot fix it.

Also here: retention (MEDIA_RETENTION_DAYS), in batches.
"""

import asyncio
import logging
from collections import Counter
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.columns import utcnow
from app.core.config import Settings
from app.core.db import unit_of_work
from app.core.metrics import Metrics
from app.media.download import VIDEO_EXTENSIONS, DownloadFailed, NotAVideo, download
from app.media.probe import probe
from app.media.store import MediaStore, staging_file
from app.videos import repository, service
from app.videos.models import EventSource, Video, VideoStatus

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
# Fal's CDN gets this long per read of the body; the whole copy is bounded by the lease.
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class Finaliser:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store: MediaStore,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.client = httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT, follow_redirects=True)
        self._copies = asyncio.Semaphore(settings.media_copy_concurrency)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """An output was recorded: copy now instead of at the next interval. Cheap enough
        for the webhook path (it sets a flag)."""
        self._wake.set()

    async def run_once(self) -> Counter[str]:
        done: Counter[str] = Counter()
        async with unit_of_work(self.sessions) as session:
            claimed = await repository.claim_copies(
                session,
                deadline_s=self.settings.job_deadline_s,
                lease_s=self.settings.media_copy_lease_s,
                limit=self.settings.reconcile_batch,
            )
        outcomes = await asyncio.gather(*(self._copy_guarded(video) for video in claimed))
        done.update(outcomes)
        done["purged"] = await self.purge_expired()
        return done

    async def _copy_guarded(self, video: Video) -> str:
        async with self._copies:
            try:
                outcome = await self.copy(video)
            except Exception:  # this job's step only: its lease brings it back
                logger.exception("copying the output of video %s failed", video.id)
                outcome = "error"
        self.metrics.media_copies.labels(outcome).inc()
        return outcome

    async def copy(self, video: Video) -> str:
        """Copy one job's output and complete it; what happened, as a metrics label."""
        assert video.video_url is not None
        staged, poster = staging_file(self.store), staging_file(self.store)
        heartbeat = asyncio.create_task(self._keep_lease(video))
        try:
            got = await download(
                self.client, video.video_url, staged, self.settings.media_max_bytes
            )
            facts = await asyncio.to_thread(probe, staged)
            poster.write_bytes(facts.poster_jpeg)
            media = service.StoredMedia(
                media_key=f"videos/{video.id}/{got.sha256[:16]}{VIDEO_EXTENSIONS[got.content_type]}",
                poster_key=f"videos/{video.id}/poster-{got.sha256[:16]}.jpg",
                media_content_type=got.content_type,
                media_size_bytes=got.size,
                media_sha256=got.sha256,
                media_width=facts.width,
                media_height=facts.height,
                media_duration_s=facts.duration_s,
            )
            await self.store.publish(media.poster_key, poster, "image/jpeg")
            await self.store.publish(media.media_key, staged, got.content_type)
            stored = await self.store.size(media.media_key)
            if stored != got.size:
                raise DownloadFailed(f"the store holds {stored} bytes of {got.size}")
        except NotAVideo as error:
            await self._give_up(video, str(error))
            return "not_a_video"
        except (DownloadFailed, OSError) as error:
            await self._retry_later(video, str(error))
            return "retry"
        finally:
            heartbeat.cancel()
            staged.unlink(missing_ok=True)
            poster.unlink(missing_ok=True)
        async with unit_of_work(self.sessions) as session:
            completed = await service.complete_with_media(session, video, media)
        if completed is None:  # ended meanwhile (its deadline): nobody will point at these
            await self.store.delete([media.media_key, media.poster_key])
            return "unneeded"
        self.metrics.media_copied_bytes.inc(got.size)
        return "copied"

    async def _keep_lease(self, video: Video) -> None:
        """Renew the row's lease every third of it while the copy runs: a large copy keeps
        its row however long it takes, and a crashed one is picked up within one lease."""
        lease = self.settings.media_copy_lease_s
        while True:
            await asyncio.sleep(lease / 3)
            try:
                async with unit_of_work(self.sessions) as session:
                    await repository.extend_copy_lease(session, video.id, lease)
            except Exception:  # a database blip: the copy goes on, the next beat retries
                logger.warning("could not extend the copy lease of video %s", video.id)

    async def _retry_later(self, video: Video, reason: str) -> None:
        backoff = min(
            self.settings.media_copy_backoff_s * 2 ** max(video.copy_attempts - 1, 0),
            MAX_BACKOFF_S,
        )
        logger.warning(
            "copy of video %s failed (attempt %d), retrying in %.0fs: %s",
            video.id, video.copy_attempts, backoff, reason,
        )  # fmt: skip
        async with unit_of_work(self.sessions) as session:
            await repository.set_fields(
                session, video.id, next_attempt_at=utcnow() + timedelta(seconds=backoff)
            )

    async def _give_up(self, video: Video, reason: str) -> None:
        logger.warning("output of video %s is unusable: %s", video.id, reason)
        async with unit_of_work(self.sessions) as session:
            await service.change_status(
                session,
                video.id,
                VideoStatus.FAILED,
                EventSource.COPY,
                error_code="provider_error",
                error_message=f"Fal's output could not be used: {reason}"[:2000],
            )

    async def purge_expired(self) -> int:
        """Delete the media of videos completed more than MEDIA_RETENTION_DAYS ago (a batch).

        The rows are marked first and the files removed after the commit: a crash in between
        leaves files no row points at (`vidgen media gc`), never a row pointing at nothing.
        """
        days = self.settings.media_retention_days
        if days is None:
            return 0
        now = utcnow()
        async with unit_of_work(self.sessions) as session:
            keys = await repository.forget_expired_media(
                session,
                before=now - timedelta(days=days),
                limit=self.settings.reconcile_batch,
                now=now,
            )
        await self.store.delete(keys)
        return len(keys)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:  # one bad pass (a database blip) must not end the loop
                logger.exception("finaliser pass failed")
            # Until woken (an output recorded here), stopped, or the interval passes (outputs
            # recorded by other replicas, retries that came due).
            waits = [asyncio.ensure_future(e.wait()) for e in (self._wake, self._stop)]
            await asyncio.wait(
                waits, timeout=self.settings.reconcile_interval_s,
                return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
            for waiter in waits:
                waiter.cancel()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="finaliser")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()
