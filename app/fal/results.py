"""What a finished Fal request means for us, read from a webhook body or a result fetch."""

from dataclasses import dataclass
from typing import Any

VIDEO_METADATA_FIELDS = ("content_type", "file_size", "file_name")


@dataclass(frozen=True)
class FalOutcome:
    """Either a video (url + metadata) or an error (code + message)."""

    video_url: str | None = None
    video_metadata: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.video_url is not None


def from_output(output: Any) -> FalOutcome:
    """A model's output (`{"video": {"url", ...}, "seed"}`) or a payload error."""
    video = output.get("video") if isinstance(output, dict) else None
    if not isinstance(video, dict) or not isinstance(video.get("url"), str):
        return FalOutcome(error_code="payload_error", error_message="Fal output had no video URL")
    metadata = {k: video[k] for k in VIDEO_METADATA_FIELDS if k in video}
    if isinstance(output, dict) and "seed" in output:
        metadata["seed"] = output["seed"]
    return FalOutcome(video_url=video["url"], video_metadata=metadata)


def from_error(error: str | None, payload: Any, error_type: str | None = None) -> FalOutcome:
    """Fal's error shapes: `{"detail": [{"msg", "type", ...}]}`, `{"detail": "..."}`, or text."""
    code, message = error_type or "fal_error", error or "Fal reported an error"
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        code = str(detail[0].get("type") or code)
        message = str(detail[0].get("msg") or message)
    elif isinstance(detail, str):
        message = detail
    if isinstance(payload, dict) and isinstance(payload.get("error_type"), str):
        code = payload["error_type"]
    return FalOutcome(error_code=code[:100], error_message=message[:2000])


def from_webhook(body: dict[str, Any]) -> FalOutcome:
    if body.get("status") == "OK" and not body.get("payload_error"):
        return from_output(body.get("payload"))
    if body.get("payload_error"):
        return FalOutcome(error_code="payload_error", error_message=str(body["payload_error"]))
    return from_error(body.get("error"), body.get("payload"))
