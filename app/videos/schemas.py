import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import Text
from app.videos.models import Video, VideoStatus

# Absolute bounds; each model's own (smaller) limits are checked by the service so the
# error can name them.
MAX_PROMPT_CHARS = 20_000


class VideoCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Text = Field(max_length=100, description="a model id from GET /api/models")
    prompt: Text = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    image_url: Text | None = Field(
        default=None,
        description="image-to-video only: an https URL, a data: image URI, or an upload's url",
    )
    duration: int | None = Field(default=None, gt=0, description="seconds; default: shortest")
    aspect_ratio: Text | None = Field(default=None, max_length=20)
    resolution: Text | None = Field(default=None, max_length=20)
    negative_prompt: Text | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


class VideoFile(BaseModel):
    url: str
    content_type: str | None = None
    file_size: int | None = None
    file_name: str | None = None


class VideoError(BaseModel):
    code: str
    message: str


class VideoPublic(BaseModel):
    id: uuid.UUID
    status: VideoStatus
    model: str
    kind: str
    prompt: str
    negative_prompt: str | None
    image_url: str | None
    duration: int
    aspect_ratio: str | None
    resolution: str | None
    seed: int | None
    credits_charged: int
    queue_position: int | None
    video: VideoFile | None
    error: VideoError | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, video: Video, model_slug: str) -> "VideoPublic":
        metadata: dict[str, Any] = video.video_metadata or {}
        return cls(
            id=video.id,
            status=VideoStatus(video.status),
            model=model_slug,
            kind=video.kind,
            prompt=video.prompt,
            negative_prompt=video.negative_prompt,
            image_url=video.image_url,
            duration=video.duration,
            aspect_ratio=video.aspect_ratio,
            resolution=video.resolution,
            seed=video.seed,
            credits_charged=video.credits_charged,
            queue_position=video.queue_position,
            video=VideoFile(url=video.video_url, **metadata) if video.video_url else None,
            error=(
                VideoError(code=video.error_code, message=video.error_message or "")
                if video.error_code
                else None
            ),
            created_at=video.created_at,
            updated_at=video.updated_at,
            completed_at=video.completed_at,
        )


class VideosPage(BaseModel):
    data: list[VideoPublic]
    next_cursor: str | None
