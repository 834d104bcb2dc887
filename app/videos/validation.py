"""Checking a video request against its model's limits; each failure names what is allowed."""

import base64
import binascii
import re
from urllib.parse import urlsplit

from app.catalog.models import CatalogModel
from app.core.errors import AppError
from app.videos.schemas import VideoCreate


class InvalidVideoRequest(AppError):
    status, code, title = 422, "invalid_video_request", "Invalid video request"


class ImageRequired(InvalidVideoRequest):
    code, title = "image_required", "Image required"


class ImageNotAllowed(InvalidVideoRequest):
    code, title = "image_not_allowed", "Image not allowed"


class InvalidImageUrl(InvalidVideoRequest):
    code, title = "invalid_image_url", "Invalid image URL"


class PromptTooLong(InvalidVideoRequest):
    code, title = "prompt_too_long", "Prompt too long"


class UnsupportedDuration(InvalidVideoRequest):
    code, title = "unsupported_duration", "Unsupported duration"


class UnsupportedAspectRatio(InvalidVideoRequest):
    code, title = "unsupported_aspect_ratio", "Unsupported aspect ratio"


class UnsupportedResolution(InvalidVideoRequest):
    code, title = "unsupported_resolution", "Unsupported resolution"


VALIDATION_ERRORS = (
    ImageRequired,
    ImageNotAllowed,
    InvalidImageUrl,
    PromptTooLong,
    UnsupportedDuration,
    UnsupportedAspectRatio,
    UnsupportedResolution,
)
DATA_URI = re.compile(r"^data:image/(png|jpeg|webp|gif);base64,([A-Za-z0-9+/=\s]+)$")


def _choose(
    value: str | None, allowed: list[str], error: type[InvalidVideoRequest], what: str
) -> str | None:
    if value is None:
        return allowed[0] if allowed else None
    if value not in allowed:
        options = ", ".join(allowed) if allowed else "none (leave it out)"
        raise error(f"{what} {value!r} is not supported by this model; allowed: {options}")
    return value


def check_image_url(url: str, max_data_uri_bytes: int) -> None:
    if url.startswith("data:"):
        if len(url) > max_data_uri_bytes * 4 // 3 + 64:
            raise InvalidImageUrl(
                f"data: URI images are limited to {max_data_uri_bytes} bytes; "
                "upload larger images with POST /api/uploads"
            )
        match = DATA_URI.match(url)
        try:
            if match is None or not base64.b64decode(match.group(2), validate=False):
                raise ValueError
        except (ValueError, binascii.Error) as error:
            raise InvalidImageUrl(
                "a data: image must be data:image/(png|jpeg|webp|gif);base64,<data>"
            ) from error
        return
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or len(url) > 2048:
        raise InvalidImageUrl("image_url must be an https:// URL (or a data: image URI)")


def normalize(request: VideoCreate, model: CatalogModel, max_data_uri_bytes: int) -> VideoCreate:
    """The request with defaults filled in, or the first rule it breaks."""
    if model.kind == "image-to-video" and not request.image_url:
        raise ImageRequired(f"{model.slug} is image-to-video: image_url is required")
    if model.kind == "text-to-video" and request.image_url:
        raise ImageNotAllowed(f"{model.slug} is text-to-video: leave out image_url")
    if len(request.prompt) > model.max_prompt_length:
        raise PromptTooLong(
            f"Prompt too long: {len(request.prompt)} characters, "
            f"the limit is {model.max_prompt_length}"
        )
    if request.negative_prompt and len(request.negative_prompt) > model.max_prompt_length:
        raise PromptTooLong(
            f"Negative prompt too long: {len(request.negative_prompt)} characters, "
            f"the limit is {model.max_prompt_length}"
        )
    duration = request.duration or min(model.durations)
    if duration not in model.durations:
        allowed = ", ".join(str(d) for d in model.durations)
        raise UnsupportedDuration(
            f"duration {duration}s is not supported by this model; allowed: {allowed}"
        )
    if request.image_url:
        check_image_url(request.image_url, max_data_uri_bytes)
    return request.model_copy(
        update={
            "duration": duration,
            "aspect_ratio": _choose(
                request.aspect_ratio, model.aspect_ratios, UnsupportedAspectRatio, "aspect_ratio"
            ),
            "resolution": _choose(
                request.resolution, model.resolutions, UnsupportedResolution, "resolution"
            ),
        }
    )
