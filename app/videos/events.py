"""Live updates of videos (GET /api/videos/{id}/events): one broker per process.

The streams of a process do not read their rows themselves. They subscribe to the process's
`VideoWatch`, which every EVENTS_POLL_INTERVAL_S reads every watched row in one query
(`repository.list_with_slug_by_ids`) and wakes the streams whose row changed: the database
sees one read per interval however many streams are open. It reads the rows (not process
memory), so a change made by any replica shows up.

Limits, all per process (each replica and each uvicorn worker counts its own):
MAX_STREAMS_PER_USER open streams per user and MAX_STREAMS_PER_PROCESS in all (the next one
is 429 `too_many_streams`), each
ending after STREAM_MAX_LIFETIME_S (the client reconnects with Last-Event-ID and misses
nothing), with a `: keep-alive` comment after STREAM_KEEPALIVE_S without an event.
"""

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import math
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from fastapi.sse import ServerSentEvent
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.errors import AppError
from app.videos import repository
from app.videos.models import Video
from app.videos.schemas import Links, VideoPublic
from app.videos.service import VideoNotFound
from app.videos.state import is_terminal

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The signals a server stops on (uvicorn's, among others).
EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TooManyStreams(AppError):
    status, code, title = 429, "too_many_streams", "Too many open event streams"


def event_id(video: Video, model_slug: str) -> str:
    """The SSE `id` of a row's state: `<"updatedAt" in µs since the epoch>-<8 hex digits>`.

    The prefix orders a video's states (every write sets "updatedAt"). The suffix, a digest
    of the whole row, tells apart two states written within the same millisecond (the
    column keeps milliseconds), where the prefix alone would hide the second one. Streams
    only ever compare ids for equality, so neither that nor clocks that disagree between
    writers can make a stream skip a state: at worst a client sees one twice.
    """
    micros = (video.updated_at - EPOCH) // timedelta(microseconds=1)
    row = f"{video.model_dump_json()}\n{model_slug}".encode()
    return f"{micros}-{hashlib.blake2b(row, digest_size=4).hexdigest()}"


async def read_owned(
    session: AsyncSession, user_id: uuid.UUID, video_id: uuid.UUID
) -> tuple[Video, str]:
    """The caller's video and its model's slug; VideoNotFound for anyone else's."""
    found = await repository.get_for_user(session, video_id, user_id)
    if found is None:
        raise VideoNotFound(f"no video {video_id}")
    return found


class Stream:
    """One open event stream as the broker sees it: the latest state of its video."""

    def __init__(self, video: VideoPublic, event_id: str, expires_at: float) -> None:
        self.video = video
        self.event_id = event_id
        self.expires_at = expires_at  # on the event loop's clock
        self.ended = False  # the broker closed, or the video is gone
        self._news = asyncio.Event()

    def update(self, video: VideoPublic, event_id: str) -> None:
        self.video, self.event_id = video, event_id
        self._news.set()

    def end(self) -> None:
        self.ended = True
        self._news.set()

    async def news(self, within_s: float) -> bool:
        """Wait at most `within_s` seconds for a new state or the end; whether either came."""
        try:
            async with asyncio.timeout(within_s):
                await self._news.wait()
        except TimeoutError:
            return False
        self._news.clear()
        return True


class VideoWatch:
    """The process's broker of live updates: which videos its streams watch, one read of
    all of them per interval, and the fan-out of what changed.

    Created by the app's lifespan, polling from the first stream on, closed at shutdown.
    Closing ends every stream, and so does SIGTERM / SIGINT: uvicorn waits for open
    responses to finish before it runs the lifespan's shutdown, so without that an open
    stream would hold a stopping server for up to STREAM_MAX_LIFETIME_S.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, links: Links
    ) -> None:
        self._sessions = sessions
        self.links = links
        self.interval_s = settings.events_poll_interval_s
        self.max_per_user = settings.max_streams_per_user
        self.max_total = settings.max_streams_per_process
        self.lifetime_s = settings.stream_max_lifetime_s
        self.keepalive_s = settings.stream_keepalive_s
        self._by_video: dict[uuid.UUID, set[Stream]] = {}
        self._by_user: dict[uuid.UUID, set[Stream]] = {}
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._chained: dict[int, Callable[[int, FrameType | None], Any]] = {}

    def render(self, video: Video, model_slug: str) -> VideoPublic:
        """A row as event data: the one place streams turn a row into the API's video.

        Media URLs are signed here, once per state and not once per poll: the event id
        (not this rendering, whose signatures change with time) says what changed.
        """
        return VideoPublic.of(video, model_slug, self.links)

    @contextlib.contextmanager
    def subscribe(self, user_id: uuid.UUID, video: Video, model_slug: str) -> Iterator[Stream]:
        """A stream of this video for its owner, for the duration of the block.

        TooManyStreams (with Retry-After: when the user's oldest stream reaches its
        lifetime) past MAX_STREAMS_PER_USER open in this process. No await between the
        count and the registration, so concurrent opens cannot overshoot the cap.
        """
        loop = asyncio.get_running_loop()
        open_streams = sum(len(streams) for streams in self._by_user.values())
        if open_streams >= self.max_total:
            raise TooManyStreams(
                f"this server holds its most event streams (MAX_STREAMS_PER_PROCESS = "
                f"{self.max_total}); retry shortly, or read the video instead",
                headers={"Retry-After": "5"},
            )
        mine = self._by_user.get(user_id, set())
        if len(mine) >= self.max_per_user:
            soonest = min(stream.expires_at for stream in mine) - loop.time()
            raise TooManyStreams(
                f"{len(mine)} event streams are open for this user in this process "
                f"(MAX_STREAMS_PER_USER = {self.max_per_user}); close one first",
                headers={"Retry-After": str(max(1, math.ceil(soonest)))},
            )
        stream = Stream(
            self.render(video, model_slug),
            event_id(video, model_slug),
            expires_at=loop.time() + self.lifetime_s,
        )
        if self._closed:
            stream.end()
        # The id now: an error raised through this block (a header refused after the stream
        # opened) rolls back the session that loaded `video`, expiring its attributes.
        video_id = video.id
        self._by_user.setdefault(user_id, set()).add(stream)
        self._by_video.setdefault(video_id, set()).add(stream)
        self._start(loop)
        try:
            yield stream
        finally:
            self._forget(self._by_user, user_id, stream)
            self._forget(self._by_video, video_id, stream)

    async def follow(
        self, stream: Stream, last_event_id: str | None
    ) -> AsyncIterator[ServerSentEvent]:
        """The events of one stream: the current state unless the client already has it
        (Last-Event-ID), then each new state, with keep-alive comments while nothing changes.
        Ends after a terminal state, at the stream's lifetime, or when the broker closes."""
        loop = asyncio.get_running_loop()
        sent = last_event_id
        while True:
            if stream.event_id != sent:
                sent = stream.event_id
                yield ServerSentEvent(event="status", id=sent, data=stream.video)
            if stream.ended or is_terminal(stream.video.status):
                return
            remaining = stream.expires_at - loop.time()
            if remaining <= 0:
                return
            news = await stream.news(min(self.keepalive_s, remaining))
            if not news and loop.time() < stream.expires_at:
                yield ServerSentEvent(comment="keep-alive")

    async def close(self) -> None:
        """End every stream and stop polling (the app's shutdown)."""
        self._end_all()
        if threading.current_thread() is threading.main_thread():
            for sig, previous in self._chained.items():
                if signal.getsignal(sig) == self._on_exit_signal:
                    signal.signal(sig, previous)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is not None or self._closed:
            return
        self._loop = loop
        # A context of its own: started inside the first stream's request, it must not stamp
        # that request's id on every line it logs afterwards.
        self._task = loop.create_task(
            self._poll(), name="video-events", context=contextvars.Context()
        )
        # Chain, not replace, the handler a server installed (signal handlers can only be
        # set from the main thread). Under the default action the process just dies.
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_SIGNALS:
                previous = signal.getsignal(sig)
                if callable(previous):
                    self._chained[sig] = previous
                    signal.signal(sig, self._on_exit_signal)

    def _on_exit_signal(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._end_all)
        self._chained[sig](sig, frame)

    def _end_all(self) -> None:
        self._closed = True
        for streams in self._by_video.values():
            for stream in streams:
                stream.end()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            watched = list(self._by_video)
            if not watched:
                continue
            try:
                async with self._sessions() as session:
                    rows = await repository.list_with_slug_by_ids(session, watched)
            except Exception:  # a database blip: the streams keep their state, next interval
                logger.exception("reading the videos of open event streams failed")
                continue
            self._fan_out(watched, {video.id: (video, slug) for video, slug in rows})

    def _fan_out(self, watched: list[uuid.UUID], rows: dict[uuid.UUID, tuple[Video, str]]) -> None:
        for video_id in watched:
            streams = self._by_video.get(video_id, set())
            if video_id not in rows:  # deleted
                for stream in streams:
                    stream.end()
                continue
            video, slug = rows[video_id]
            current = event_id(video, slug)
            behind = [stream for stream in streams if stream.event_id != current]
            if behind:
                public = self.render(video, slug)
                for stream in behind:
                    stream.update(public, current)

    @staticmethod
    def _forget(index: dict[uuid.UUID, set[Stream]], key: uuid.UUID, stream: Stream) -> None:
        streams = index.get(key)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del index[key]
