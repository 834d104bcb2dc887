import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import Text
from app.media.store import MediaStore
from app.videos.models import Video, VideoStatus

# image_url `upload:<id>` names an image stored by POST /api/uploads (its `image_url`).
UPLOAD_SCHEME = "upload:"


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
        description=(
            "image-to-video only: an https URL, a data: image URI, or `upload:<id>` "
            "(the `image_url` POST /api/uploads answers)"
        ),
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


@dataclass(frozen=True)
class Links:
    """What a response needs to say where things are: signed media URLs (fresh on every
    read, valid MEDIA_URL_TTL_S) and the API's own addresses. One per process."""

    store: MediaStore
    ttl_s: int
    base_url: str

    def media(self, key: str) -> str:
        return self.store.url(key, self.ttl_s)

    def of_video(self, video_id: uuid.UUID) -> "VideoUrls":
        own = f"{self.base_url}/api/videos/{video_id}"
        return VideoUrls(self=own, events=f"{own}/events", cancel=f"{own}/cancel")


class VideoUrls(BaseModel):
    """Where to read, follow and cancel this video (as Replicate's predictions carry)."""

    self: str
    events: str
    cancel: str


class VideoFile(BaseModel):
    """Our copy of the output: it outlives Fal's. `url` and `poster_url` are signed and
    expire (MEDIA_URL_TTL_S); read the video again for fresh ones."""

    url: str
    poster_url: str | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    file_size: int | None = Field(default=None, deprecated=True, description="= size_bytes")
    file_name: str | None = None

    @classmethod
    def of(cls, video: Video, links: Links) -> "VideoFile | None":
        if video.media_key is None or video.media_deleted_at is not None:
            return None
        return cls(
            url=links.media(video.media_key),
            poster_url=links.media(video.poster_key) if video.poster_key else None,
            content_type=video.media_content_type,
            width=video.media_width,
            height=video.media_height,
            duration_s=video.media_duration_s,
            size_bytes=video.media_size_bytes,
            sha256=video.media_sha256,
            file_size=video.media_size_bytes,
            file_name=video.media_key.rsplit("/", 1)[-1],
        )


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
    video: VideoFile | None = Field(
        description="our copy of the output, once completed (until deleted or past retention)"
    )
    media_deleted_at: datetime | None = Field(
        default=None, description="when the output was deleted (by its owner, or retention)"
    )
    error: VideoError | None
    created_at: datetime
    started_at: datetime | None = Field(default=None, description="when Fal started running it")
    updated_at: datetime
    completed_at: datetime | None
    urls: VideoUrls

    @classmethod
    def of(cls, video: Video, model_slug: str, links: Links) -> "VideoPublic":
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
            video=VideoFile.of(video, links),
            media_deleted_at=video.media_deleted_at,
            error=(
                VideoError(code=video.error_code, message=video.error_message or "")
                if video.error_code
                else None
            ),
            created_at=video.created_at,
            started_at=video.started_at,
            updated_at=video.updated_at,
            completed_at=video.completed_at,
            urls=links.of_video(video.id),
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
