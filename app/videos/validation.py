"""Checking a video request against its model's schema; each failure names what is allowed.

The model's schema (app.fal.model_spec, from app/catalog/catalog.json) says which options it
takes, their allowed values and defaults, and which combinations Fal refuses. A request that
passes is normalised: every option the model takes, given or defaulted, is what is priced,
stored and sent to Fal.
"""

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.core.errors import AppError
from app.fal.model_spec import ModelSpec, Scalar
from app.videos.schemas import OPTION_FIELDS, UPLOAD_SCHEME, VideoCreate


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


class UnsupportedParameter(InvalidVideoRequest):
    code, title = "unsupported_parameter", "Parameter not supported by this model"


class UnsupportedValue(InvalidVideoRequest):
    code, title = "unsupported_value", "Value not supported by this model"


class UnsupportedDuration(UnsupportedValue):
    code, title = "unsupported_duration", "Unsupported duration"


class UnsupportedAspectRatio(UnsupportedValue):
    code, title = "unsupported_aspect_ratio", "Unsupported aspect ratio"


class UnsupportedResolution(UnsupportedValue):
    code, title = "unsupported_resolution", "Unsupported resolution"


class UnsupportedCombination(InvalidVideoRequest):
    code, title = "unsupported_combination", "Options not supported together"


VALIDATION_ERRORS = (
    ImageRequired,
    ImageNotAllowed,
    InvalidImageUrl,
    PromptTooLong,
    UnsupportedParameter,
    UnsupportedValue,
    UnsupportedDuration,
    UnsupportedAspectRatio,
    UnsupportedResolution,
    UnsupportedCombination,
)
# The value errors that have had their own code since the first release.
VALUE_ERRORS: dict[str, type[UnsupportedValue]] = {
    "duration": UnsupportedDuration,
    "aspect_ratio": UnsupportedAspectRatio,
    "resolution": UnsupportedResolution,
}
DATA_URI = re.compile(r"^data:image/(png|jpeg|webp|gif);base64,([A-Za-z0-9+/=\s]+)$")


@dataclass(frozen=True)
class NormalisedRequest:
    """A request that passed its model's schema: what is priced, stored and sent to Fal."""

    prompt: str
    image_url: str | None
    options: dict[str, Scalar]

    def option(self, name: str) -> Any:
        return self.options.get(name)


def _field_error(field: str, message: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"loc": ["body", field], "msg": message, **extra}]


def check_image_url(url: str, max_data_uri_bytes: int) -> None:
    if url.startswith(UPLOAD_SCHEME):
        try:
            uuid.UUID(url.removeprefix(UPLOAD_SCHEME))
        except ValueError as error:
            raise InvalidImageUrl(
                "an upload is named `upload:<id>`, as POST /api/uploads answers"
            ) from error
        return
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
        raise InvalidImageUrl(
            "image_url must be an https:// URL, a data: image URI, or `upload:<id>`"
        )


def _check_prompt(request: VideoCreate, spec: ModelSpec) -> None:
    limit = spec.prompt.max_length
    if len(request.prompt) > limit:
        raise PromptTooLong(
            f"Prompt too long: {len(request.prompt)} characters, the limit is {limit}",
            errors=_field_error("prompt", f"at most {limit} characters", max_length=limit),
        )


def _given_options(request: VideoCreate, spec: ModelSpec) -> dict[str, Scalar]:
    given: dict[str, Scalar] = {}
    for name in OPTION_FIELDS:
        value = getattr(request, name)
        if value is None:
            continue
        parameter = spec.parameters.get(name)
        if parameter is None:
            takes = ", ".join(sorted(spec.parameters)) or "no options"
            raise UnsupportedParameter(
                f"{spec.slug} does not take {name!r}; it takes: {takes}",
                errors=_field_error(name, "not a parameter of this model"),
            )
        limit = parameter.max_length
        if name == "negative_prompt" and limit is not None and len(str(value)) > limit:
            raise PromptTooLong(
                f"Negative prompt too long: {len(str(value))} characters, the limit is {limit}",
                errors=_field_error(name, "too long", max_length=limit),
            )
        if problem := parameter.value_errors(value):
            error = VALUE_ERRORS.get(name, UnsupportedValue)
            allowed = ", ".join(map(str, parameter.choices or []))
            raise error(
                f"{name} {value!r} is not supported by {spec.slug}: {problem}",
                errors=_field_error(name, problem, allowed=parameter.choices or None) if allowed
                else _field_error(name, problem),
            )  # fmt: skip
        given[name] = value
    return given


def normalise(request: VideoCreate, spec: ModelSpec, max_data_uri_bytes: int) -> NormalisedRequest:
    """The request with every option the model takes filled in, or the first rule it breaks."""
    if spec.kind == "image-to-video" and not request.image_url:
        raise ImageRequired(f"{spec.slug} is image-to-video: image_url is required")
    if spec.kind == "text-to-video" and request.image_url:
        raise ImageNotAllowed(f"{spec.slug} is text-to-video: leave out image_url")
    _check_prompt(request, spec)
    options = spec.defaults() | _given_options(request, spec)
    for constraint in spec.constraints:
        if constraint.broken_by(options):
            names = [*constraint.when, *constraint.offending(options)]
            raise UnsupportedCombination(
                f"{spec.slug}: {constraint.message} (asked: "
                + ", ".join(f"{n}={options.get(n)!r}" for n in names)
                + ")",
                errors=[{"loc": ["body", n], "msg": constraint.message} for n in names],
            )
    if request.image_url:
        check_image_url(request.image_url, max_data_uri_bytes)
    return NormalisedRequest(request.prompt, request.image_url, options)
