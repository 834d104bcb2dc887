"""What a finished Fal request means for us, read from a webhook body, a status or a result.

A failure is one of three reasons a client can act on (`error.code` of the video):
- `content_policy_violation`: Fal's content checker refused the prompt or image;
- `invalid_input`: Fal refused the input itself (a 422 naming a body field);
- `provider_error`: anything else on Fal's side (runner crash, timeout, a missing output).
Fal's own type and message are kept in the message, so nothing is lost for support.
"""

import re
from dataclasses import dataclass
from typing import Any, Literal

VIDEO_METADATA_FIELDS = ("content_type", "file_size", "file_name")
FailureReason = Literal["content_policy_violation", "invalid_input", "provider_error"]
CONTENT_POLICY: FailureReason = "content_policy_violation"
STATUS_IN_ERROR = re.compile(r"status code:?\s*(\d{3})", re.IGNORECASE)


@dataclass(frozen=True)
class FalOutcome:
    """Either a video (url + metadata) or an error (reason code + message)."""

    video_url: str | None = None
    video_metadata: dict[str, Any] | None = None
    error_code: FailureReason | None = None
    error_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.video_url is not None


def provider_error(message: str) -> FalOutcome:
    return FalOutcome(error_code="provider_error", error_message=message[:2000])


def from_output(output: Any) -> FalOutcome:
    """A model's output (`{"video": {"url", ...}, "seed"}`), or a provider error without one."""
    video = output.get("video") if isinstance(output, dict) else None
    if not isinstance(video, dict) or not isinstance(video.get("url"), str):
        return provider_error("Fal's output had no video URL")
    metadata = {k: video[k] for k in VIDEO_METADATA_FIELDS if k in video}
    if isinstance(output, dict) and "seed" in output:
        metadata["seed"] = output["seed"]
    return FalOutcome(video_url=video["url"], video_metadata=metadata)


def _reason(error_type: str | None, status: int | None, details: list[Any]) -> FailureReason:
    types = {error_type} | {d.get("type") for d in details if isinstance(d, dict)}
    if CONTENT_POLICY in types:
        return CONTENT_POLICY
    in_body = any(
        isinstance(d, dict) and isinstance(d.get("loc"), list) and d["loc"][:1] == ["body"]
        for d in details
    )
    return "invalid_input" if status == 422 and in_body else "provider_error"


def from_error(
    error: str | None, payload: Any, error_type: str | None = None, status: int | None = None
) -> FalOutcome:
    """Fal's error shapes: `{"detail": [{"loc", "msg", "type"}]}`, `{"detail": "…"}`, or text.

    `status` is the HTTP status of the failed request when known; a webhook says it only in
    its `error` ("Invalid status code: 422").
    """
    message = error or "Fal reported an error"
    if status is None and error and (match := STATUS_IN_ERROR.search(error)):
        status = int(match.group(1))
    detail = payload.get("detail") if isinstance(payload, dict) else None
    details = detail if isinstance(detail, list) else []
    if details and isinstance(details[0], dict):
        message = str(details[0].get("msg") or message)
    elif isinstance(detail, str):
        message = detail
    if isinstance(payload, dict) and isinstance(payload.get("error_type"), str):
        error_type = payload["error_type"]
    reason = _reason(error_type, status, details)
    prefix = f"{error_type}: " if error_type and error_type != reason else ""
    return FalOutcome(error_code=reason, error_message=(prefix + message)[:2000])


def from_webhook(body: dict[str, Any]) -> FalOutcome:
    if body.get("status") == "OK" and not body.get("payload_error"):
        return from_output(body.get("payload"))
    if body.get("payload_error"):
        return provider_error(f"Fal could not deliver the output: {body['payload_error']}")
    return from_error(body.get("error"), body.get("payload"))
