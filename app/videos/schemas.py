import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import Text
from app.videos.models import Video, VideoStatus


class VideoCreate(BaseModel):
    """The create (and quote) body. Which options a model takes, their allowed values and
    defaults, are the model's own: GET /api/models lists them as `parameters`. A field the
    chosen model does not take is 422 `unsupported_parameter`; lengths (the prompt's too) are
    checked against the model, so any over-long prompt is 422 `prompt_too_long`."""

    model_config = ConfigDict(extra="forbid")

    model: Text = Field(max_length=100, description="a model id from GET /api/models")
    prompt: Text = Field(min_length=1)
    image_url: Text | None = Field(
        default=None,
        description="image-to-video only: an https URL, a data: image URI, or an upload's url",
    )
    duration: int | None = Field(default=None, gt=0, description="seconds; default: the model's")
    aspect_ratio: Text | None = Field(default=None, max_length=20)
    resolution: Text | None = Field(default=None, max_length=20)
    negative_prompt: Text | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    generate_audio: bool | None = Field(default=None, description="models with sound")
    fps: int | None = Field(default=None, gt=0)
    cfg_scale: float | None = Field(default=None, ge=0, le=100)
    camera_fixed: bool | None = None
    prompt_optimizer: bool | None = None


# Every body field that is a model option (the rest say what to make and from what).
OPTION_FIELDS = tuple(
    name for name in VideoCreate.model_fields if name not in {"model", "prompt", "image_url"}
)


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
    options: dict[str, bool | int | float | str] = Field(
        description="every option the video is made with (given or the model's default)"
    )
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
            options=video.options or {},
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


class Quote(BaseModel):
    """What a create with the same body would charge, and every option it would run with
    (given or the model's default; options the model does not take are left out)."""

    credits: int
    model: str
    kind: str
    duration: int
    aspect_ratio: str | None = None
    resolution: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    generate_audio: bool | None = None
    fps: int | None = None
    cfg_scale: float | None = None
    camera_fixed: bool | None = None
    prompt_optimizer: bool | None = None


class VideosPage(BaseModel):
    data: list[VideoPublic]
    next_cursor: str | None
