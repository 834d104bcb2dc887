import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.core.columns import column, timestamp_column, utcnow


class VideoStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    PROCESSING = "processing"
    CANCELING = (
        "canceling"  # canceled while Fal runs it: ends canceled, or completed if Fal delivers
    )
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class Video(SQLModel, table=True):
    """A generation job. A `pending` row is the outbox the dispatcher submits to Fal."""

    __tablename__ = "videos"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = column("userId", foreign_key="users.id")
    model_id: uuid.UUID = column("modelId", foreign_key="models.id")
    kind: str
    prompt: str
    negative_prompt: str | None = column("negativePrompt", default=None)
    image_url: str | None = column("imageUrl", default=None)
    duration: int
    aspect_ratio: str | None = column("aspectRatio", default=None)
    resolution: str | None = None
    seed: int | None = Field(default=None, sa_type=BigInteger)
    options: dict[str, Any] | None = Field(default=None, sa_type=JSONB(none_as_null=True))
    status: str = VideoStatus.PENDING
    fal_request_id: str | None = column("falRequestId", default=None)
    queue_position: int | None = column("queuePosition", default=None)
    video_url: str | None = column("videoUrl", default=None)
    video_metadata: dict[str, Any] | None = column(
        "videoMetadata", default=None, sa_type=JSONB(none_as_null=True)
    )
    # Our copy of the output (app/media/); "videoUrl" above is Fal's, never shown to clients.
    media_key: str | None = column("mediaKey", default=None)
    poster_key: str | None = column("posterKey", default=None)
    media_content_type: str | None = column("mediaContentType", default=None)
    media_size_bytes: int | None = column("mediaSizeBytes", default=None, sa_type=BigInteger)
    media_sha256: str | None = column("mediaSha256", default=None)
    media_width: int | None = column("mediaWidth", default=None)
    media_height: int | None = column("mediaHeight", default=None)
    media_duration_s: float | None = column("mediaDurationS", default=None)
    media_deleted_at: datetime | None = timestamp_column("mediaDeletedAt", default=None)
    copy_attempts: int = column("copyAttempts", default=0)
    error_code: str | None = column("errorCode", default=None)
    error_message: str | None = column("errorMessage", default=None)
    credits_charged: int = column("creditsCharged", sa_type=BigInteger)
    idempotency_key: str = column("idempotencyKey")
    request_fingerprint: str = column("requestFingerprint")
    submit_attempts: int = column("submitAttempts", default=0)
    poll_attempts: int = column("pollAttempts", default=0)
    next_attempt_at: datetime | None = timestamp_column("nextAttemptAt", default=None)
    last_event_at: datetime | None = timestamp_column("lastEventAt", default=None)
    started_at: datetime | None = timestamp_column("startedAt", default=None)
    created_at: datetime = timestamp_column("createdAt", default_factory=utcnow)
    updated_at: datetime = timestamp_column("updatedAt", default_factory=utcnow)
    completed_at: datetime | None = timestamp_column("completedAt", default=None)


class EventSource(StrEnum):
    API = "api"
    DISPATCH = "dispatch"
    WEBHOOK = "webhook"
    POLL = "poll"
    DEADLINE = "deadline"
    COPY = "copy"  # our copy of the output is published: the job completes
