"""GET /api/videos/{id}/events over a real uvicorn: ids and resume, keep-alive, the per-user
cap, the lifetime, one database read per interval for every stream, and SIGTERM."""

import asyncio
import json
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.fal.simulator.process import SimulatorProcess
from tests.support.apps import AppProcess, live_server, make_settings, wait_until
from tests.support.factories import ApiUser, create_user
from tests.support.jobs import create

ID = re.compile(r"^([0-9]+)-[0-9a-f]{8}$")
WITHIN = 10.0  # seconds: a deadline for what should take a fraction of one
FAST = {"events_poll_interval_s": 0.05, "stream_keepalive_s": 30.0}


class EventStream:
    """An open text/event-stream response, read one item at a time: an event's fields
    (`event`, `id`, `data`) or `{"comment": ...}`; None once the server ended it."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> dict[str, str] | None:
        return await asyncio.wait_for(self._next(), timeout=WITHIN)

    async def _next(self) -> dict[str, str] | None:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line.startswith(":"):
                return {"comment": line[1:].strip()}
            if line == "":
                if fields:
                    return fields
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        return fields or None

    async def next_event(self) -> dict[str, str]:
        """The next event, skipping keep-alive comments."""
        while True:
            item = await self.next()
            assert item is not None, "the stream ended"
            if "comment" not in item:
                return item


def video_of(item: dict[str, str]) -> dict[str, Any]:
    assert item["event"] == "status" and ID.match(item["id"]), item
    video: dict[str, Any] = json.loads(item["data"])
    return video


def micros(event_id: str) -> int:
    match = ID.match(event_id)
    assert match, event_id
    return int(match.group(1))


@asynccontextmanager
async def open_events(
    client: httpx.AsyncClient, user: ApiUser, video_id: str, last_event_id: str | None = None
) -> AsyncIterator[EventStream]:
    headers = dict(user.auth)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with client.stream("GET", f"/api/videos/{video_id}/events", headers=headers) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        yield EventStream(r)


async def touch(db: asyncpg.Connection, video_id: str, **columns: object) -> None:
    """A change to the row as any writer makes one: the columns, and "updatedAt"."""
    sets = ", ".join(f'"{name}" = ${i}' for i, name in enumerate(columns, start=2))
    await db.execute(
        f'UPDATE videos SET {sets}, "updatedAt" = now() WHERE id = $1',
        uuid.UUID(video_id),
        *columns.values(),
    )


async def test_events_carry_ids_and_follow_changes_until_terminal(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with (
        live_server(make_settings(database_url, **FAST)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        user = await create_user(client, credits=500)
        video_id = (await create(client, user))["id"]
        async with open_events(client, user, video_id) as stream:
            first = await stream.next_event()
            assert video_of(first)["id"] == video_id
            assert video_of(first)["status"] == "pending"

            await touch(db, video_id, queuePosition=3)
            moved = await stream.next_event()
            assert video_of(moved)["queue_position"] == 3 and video_of(moved)["status"] == "pending"
            assert micros(moved["id"]) >= micros(first["id"]) and moved["id"] != first["id"]

            canceled = await client.post(f"/api/videos/{video_id}/cancel", headers=user.auth)
            assert canceled.status_code == 200
            last = await stream.next_event()
            assert video_of(last)["status"] == "canceled"
            assert video_of(last) == canceled.json()  # the data is the video as the API shows it
            assert await stream.next() is None  # terminal: the stream ends


async def test_last_event_id_resumes_without_a_duplicate(
    database_url: str, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, events_poll_interval_s=0.05, stream_keepalive_s=0.2)
    async with live_server(settings) as url, httpx.AsyncClient(base_url=url) as client:
        user = await create_user(client, credits=500)
        video_id = (await create(client, user))["id"]
        async with open_events(client, user, video_id) as stream:
            seen = await stream.next()
            assert seen is not None and "id" in seen

        # The current state's id: nothing is sent again; the first thing is a keep-alive.
        async with open_events(client, user, video_id, seen["id"]) as stream:
            assert await stream.next() == {"comment": "keep-alive"}
            await touch(db, video_id, queuePosition=7)
            changed = await stream.next_event()
            assert video_of(changed)["queue_position"] == 7

        # An older id, or one that was never ours: the current state at once.
        for stale in (seen["id"], "0-00000000", "not-an-id"):
            async with open_events(client, user, video_id, stale) as stream:
                assert await stream.next() == changed

        await client.post(f"/api/videos/{video_id}/cancel", headers=user.auth)
        async with open_events(client, user, video_id, changed["id"]) as stream:
            terminal = await stream.next_event()
            assert video_of(terminal)["status"] == "canceled"
        # Resumed at the terminal state: nothing to send, and the stream ends.
        async with open_events(client, user, video_id, terminal["id"]) as stream:
            assert await stream.next() is None


async def test_keep_alive_comments_while_nothing_changes(database_url: str) -> None:
    settings = make_settings(database_url, events_poll_interval_s=0.05, stream_keepalive_s=0.1)
    async with live_server(settings) as url, httpx.AsyncClient(base_url=url) as client:
        user = await create_user(client, credits=500)
        video_id = (await create(client, user))["id"]
        async with open_events(client, user, video_id) as stream:
            assert "id" in ((await stream.next()) or {})
            for _ in range(3):
                assert await stream.next() == {"comment": "keep-alive"}


async def test_a_users_sixth_stream_is_429_while_another_user_opens_one(
    database_url: str,
) -> None:
    async with (
        live_server(make_settings(database_url, **FAST)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        user = await create_user(client, credits=1000)
        other = await create_user(client, credits=500)
        video_id = (await create(client, user))["id"]
        async with AsyncExitStack() as open_streams:
            streams = [
                await open_streams.enter_async_context(open_events(client, user, video_id))
                for _ in range(5)  # MAX_STREAMS_PER_USER's default
            ]
            for stream in streams:
                await stream.next_event()

            refused = await client.get(f"/api/videos/{video_id}/events", headers=user.auth)
            assert refused.status_code == 429
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["code"] == "too_many_streams"
            assert 1 <= int(refused.headers["Retry-After"]) <= 600  # the oldest one's end

            others = (await create(client, other))["id"]
            async with open_events(client, other, others) as stream:
                assert video_of(await stream.next_event())["id"] == others
            # Someone else's video is still 404, before any stream or count.
            stranger = await client.get(f"/api/videos/{video_id}/events", headers=other.auth)
            assert stranger.status_code == 404
            assert stranger.json()["code"] == "video_not_found"

            # Closing one frees its place (once the server has seen the disconnect).
            await streams[0].response.aclose()

            async def reopened() -> httpx.Response | None:
                request = client.build_request(
                    "GET", f"/api/videos/{video_id}/events", headers=user.auth
                )
                response = await client.send(request, stream=True)
                if response.status_code == 200:
                    return response
                assert response.status_code == 429
                await response.aclose()
                return None

            response = await wait_until(reopened, within=WITHIN, what="a freed stream place")
            assert video_of(await EventStream(response).next_event())["id"] == video_id
            await response.aclose()


async def test_a_stream_ends_at_its_lifetime_and_resumes(database_url: str) -> None:
    settings = make_settings(
        database_url,
        events_poll_interval_s=0.05,
        stream_keepalive_s=0.2,
        stream_max_lifetime_s=0.6,
    )
    async with live_server(settings) as url, httpx.AsyncClient(base_url=url) as client:
        user = await create_user(client, credits=500)
        video_id = (await create(client, user))["id"]
        started = time.monotonic()
        async with open_events(client, user, video_id) as stream:
            items = [await stream.next()]
            while (item := await stream.next()) is not None:
                items.append(item)
        assert time.monotonic() - started >= 0.6
        events = [item for item in items if item and "comment" not in item]
        assert len(events) == 1 and video_of(events[0])["status"] == "pending"
        assert {"comment": "keep-alive"} in items
        # The client reconnects where it left off: no duplicate of the state it has.
        async with open_events(client, user, video_id, events[0]["id"]) as stream:
            assert await stream.next() == {"comment": "keep-alive"}


async def test_one_database_read_per_interval_for_all_streams(
    database_url: str, db: asyncpg.Connection
) -> None:
    """20 streams on 20 videos: every interval the process reads all of them in one
    statement. Counted where every SQLAlchemy statement of the process goes out."""
    interval = 0.1
    settings = make_settings(
        database_url,
        events_poll_interval_s=interval,
        max_streams_per_user=20,
        max_active_jobs_per_user=20,
    )
    reads: list[tuple[float, str, Any]] = []

    def count(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM videos" in statement:
            reads.append((time.monotonic(), statement, params))

    async with live_server(settings) as url, httpx.AsyncClient(base_url=url) as client:
        user = await create_user(client, credits=20 * 168)
        video_ids = [(await create(client, user))["id"] for _ in range(20)]
        async with AsyncExitStack() as open_streams:
            streams = [
                await open_streams.enter_async_context(open_events(client, user, video_id))
                for video_id in video_ids
            ]
            for stream in streams:
                await stream.next_event()

            async def six_reads() -> bool:
                return len(reads) >= 6

            event.listen(Engine, "before_cursor_execute", count)
            try:
                await wait_until(six_reads, within=WITHIN, interval=interval, what="6 reads")
                window = list(reads)
            finally:
                event.remove(Engine, "before_cursor_execute", count)

            # Nothing but the broker's batched read, each carrying all 20 ids ...
            assert all("= ANY" in statement for _, statement, _ in window)
            assert all(sorted(map(str, params[0])) == sorted(video_ids) for *_, params in window)
            # ... and one per interval, not one per stream.
            assert window[-1][0] - window[0][0] >= (len(window) - 1) * interval * 0.9

            # A change reaches the stream of that video, and only that one.
            await touch(db, video_ids[7], queuePosition=1)
            assert video_of(await streams[7].next_event())["queue_position"] == 1


async def test_sigterm_ends_open_streams_at_once(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path
) -> None:
    """uvicorn waits for open responses before it stops; a stream must not hold it."""
    app = AppProcess(
        database_url,
        simulator,
        tmp_path,
        DISPATCH_ENABLED="false",  # the video stays pending, the stream open
        STREAM_MAX_LIFETIME_S="120",
    ).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=WITHIN) as client:
            user = await create_user(client, credits=500)
            video_id = (await create(client, user))["id"]
            async with open_events(client, user, video_id) as stream:
                await stream.next_event()
                assert app.process is not None
                started = time.monotonic()
                app.process.send_signal(signal.SIGTERM)
                assert await stream.next() is None  # the server ended the stream
                await asyncio.to_thread(app.process.wait, WITHIN)
                assert time.monotonic() - started < 5
            # 0, or -SIGTERM when uvicorn re-raises the signal after its graceful shutdown.
            assert app.process.returncode in (0, -signal.SIGTERM)
    finally:
        app.stop()


async def test_a_process_holds_at_most_its_total_of_streams(database_url: str) -> None:
    settings = make_settings(database_url, max_streams_per_process=2, **FAST)
    async with live_server(settings) as url, httpx.AsyncClient(base_url=url) as client:
        first, second = (
            await create_user(client, credits=500),
            await create_user(client, credits=500),
        )
        mine = (await create(client, first))["id"]
        async with open_events(client, first, mine) as one, open_events(client, first, mine) as two:
            await one.next_event()
            await two.next_event()
            theirs = (await create(client, second))["id"]
            refused = await client.get(f"/api/videos/{theirs}/events", headers=second.auth)
            assert refused.status_code == 429 and refused.json()["code"] == "too_many_streams"
            assert "MAX_STREAMS_PER_PROCESS" in refused.json()["detail"]


async def test_a_refused_last_event_id_is_a_422_not_a_500(database_url: str) -> None:
    async with (
        live_server(make_settings(database_url, **FAST)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        user = await create_user(client, credits=500)
        video_id = (await create(client, user))["id"]
        refused = await client.get(
            f"/api/videos/{video_id}/events",
            headers={**user.auth, "Last-Event-ID": "x" * 65},
        )
        assert refused.status_code == 422 and refused.json()["code"] == "validation_error"
        # Its place was given back: the user can open all of theirs.
        async with open_events(client, user, video_id) as stream:
            assert video_of(await stream.next_event())["id"] == video_id
