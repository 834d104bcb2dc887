"""The video job state machine (docs/architecture.md, "The life of a video"), in one place.

pending ➜ queued ➜ processing ➜ completed | failed. A cancel before Fal runs the job
(pending, queued) ➜ canceled at once. A cancel while Fal runs it (processing) ➜ canceling:
Fal only signals the model, so the job ends canceled (refunded) when Fal's final word is
not a video, or completed (charged, the user gets the video) when Fal delivers anyway.
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
# A move to `failed` from `canceling` lands on `canceled` (repository.FINISH): the user asked
# to stop, and Fal's non-video answer is the stop.
ALLOWED_FROM: dict[VideoStatus, frozenset[VideoStatus]] = {
    VideoStatus.PENDING: frozenset(),
    VideoStatus.QUEUED: frozenset({VideoStatus.PENDING}),
    VideoStatus.PROCESSING: frozenset({VideoStatus.PENDING, VideoStatus.QUEUED}),
    VideoStatus.CANCELING: frozenset({VideoStatus.PROCESSING}),
    VideoStatus.COMPLETED: frozenset(
        {VideoStatus.QUEUED, VideoStatus.PROCESSING, VideoStatus.CANCELING}
    ),
    VideoStatus.FAILED: ACTIVE,
    # Only before Fal runs the job: a job being canceled ends by Fal's word (a `failed` move
    # landing on `canceled`, or `completed`), never by a second cancel, which would refund a
    # job Fal may still deliver and bill.
    VideoStatus.CANCELED: frozenset({VideoStatus.PENDING, VideoStatus.QUEUED}),
}


def can_transition(current: VideoStatus, target: VideoStatus) -> bool:
    return current in ALLOWED_FROM[target]


def is_terminal(status: str) -> bool:
    return status in TERMINAL
