"""The video job state machine (DESIGN §5), in one place.

pending ➜ queued ➜ processing ➜ completed | failed; any non-terminal ➜ canceled.
Terminal states never change. `failed` and `canceled` carry exactly one refund, written
in the same transaction as the status change (see service.change_status).
"""

from app.videos.models import VideoStatus

TERMINAL = frozenset({VideoStatus.COMPLETED, VideoStatus.FAILED, VideoStatus.CANCELED})
ACTIVE = frozenset(VideoStatus) - TERMINAL
REFUNDED = frozenset({VideoStatus.FAILED, VideoStatus.CANCELED})

# Forward-only: news that arrives late (a `queued` poll after the webhook said `processing`)
# is not a transition and is ignored. Any active state may end; Fal may also report a job
# done before we ever saw it processing.
ALLOWED_FROM: dict[VideoStatus, frozenset[VideoStatus]] = {
    VideoStatus.PENDING: frozenset(),
    VideoStatus.QUEUED: frozenset({VideoStatus.PENDING}),
    VideoStatus.PROCESSING: frozenset({VideoStatus.PENDING, VideoStatus.QUEUED}),
    VideoStatus.COMPLETED: frozenset({VideoStatus.QUEUED, VideoStatus.PROCESSING}),
    VideoStatus.FAILED: ACTIVE,
    VideoStatus.CANCELED: ACTIVE,
}


def can_transition(current: VideoStatus, target: VideoStatus) -> bool:
    return current in ALLOWED_FROM[target]


def is_terminal(status: str) -> bool:
    return status in TERMINAL
