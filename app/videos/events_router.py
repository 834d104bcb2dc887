"""GET /api/videos/{video_id}/events: a video's live updates as server-sent events.

FastAPI's own SSE support (`fastapi.sse`), not sse-starlette: it already encodes what this
route sends (`ServerSentEvent`: event, id, the video as JSON data, comments), sets the
no-cache and no-proxy-buffering headers and documents the route as `text/event-stream`,
without another dependency. What neither library gives (a per-user cap, one read for all
the streams of a process) is in app/videos/events.py, and so is the one thing sse-starlette
would have added: ending open streams when the server is told to stop.
"""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.core.deps import SessionDep
from app.core.errors import Unauthorized, problem_responses
from app.users.deps import CurrentUser
from app.videos import events
from app.videos.events import Stream, TooManyStreams, VideoWatch
from app.videos.models import Video
from app.videos.service import VideoNotFound

router = APIRouter(tags=["videos"])

# One event: `event: status`, its `id`, and `data` holding the video (VideoPublic) as JSON.
# `itemSchema` (OpenAPI 3.2, "Server-Sent Events"): the schema of each event, not of the body.
STATUS_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "const": "status"},
        "id": {
            "type": "string",
            "pattern": "^[0-9]+-[0-9a-f]{8}$",
            "description": "the state's id; send it back as Last-Event-ID to resume",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/VideoPublic"},
        },
    },
    "required": ["event", "id", "data"],
}

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=64,
        description="the `id` of the last event received: that state is not sent again",
    ),
]


async def owned_video(
    video_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> tuple[Video, str]:
    return await events.read_owned(session, user.id, video_id)


async def open_stream(
    request: Request, user: CurrentUser, owned: Annotated[tuple[Video, str], Depends(owned_video)]
) -> AsyncIterator[Stream]:
    """The caller's stream, counted against the cap from before the response starts (404
    and 429 are ordinary answers) until the streamed body has ended."""
    watch: VideoWatch = request.app.state.video_watch
    with watch.subscribe(user.id, *owned) as stream:
        yield stream


@router.get(
    "/api/videos/{video_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`event: status` with the video on every change, until terminal",
            "content": {"text/event-stream": {"itemSchema": STATUS_EVENT_SCHEMA}},
        },
        **problem_responses(Unauthorized, VideoNotFound, TooManyStreams),
    },
)
async def video_events(
    request: Request,
    stream: Annotated[Stream, Depends(open_stream)],
    last_event_id: LastEventId = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events of the video's changes: `event: status`, `data` the video as
    GET /api/videos/{video_id} answers it. First the current state, then every change; the
    stream ends after a terminal status (completed, failed, canceled).

    **Ids and resuming.** Each event's `id` is `<updatedAt in µs since the epoch>-<8 hex
    digits of a digest of the row>`: the prefix orders a video's states, the suffix tells
    apart two written within the same millisecond. Reconnect with `Last-Event-ID: <id>`:
    if that is still the current state, it is not sent again; any other id (older, or
    unknown) gets the current state at once. The server only compares ids for equality.

    **Keep-alive and lifetime.** While nothing changes, a `: keep-alive` comment every
    STREAM_KEEPALIVE_S (15 s). A stream ends after STREAM_MAX_LIFETIME_S (600 s), and when
    the server stops: reconnect with Last-Event-ID, nothing is missed.

    **Cap.** At most MAX_STREAMS_PER_USER (5) open streams per user **per replica** (each
    server process counts its own); the next is 429 `too_many_streams`, with Retry-After.

    Browsers: `EventSource` cannot send `Authorization`; use a fetch-based reader.
    """
    watch: VideoWatch = request.app.state.video_watch
    async for event in watch.follow(stream, last_event_id):
        yield event
