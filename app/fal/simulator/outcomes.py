"""What a finished request looks like to each reader: status poll, result fetch, webhook.

Real Fal has no FAILED status: a failed request is COMPLETED with `error` / `error_type`,
the result endpoint answers an error status with Fal's error body, and the webhook says
`"status": "ERROR"` with `error: "Invalid status code: N"` and that body as its payload.
Each outcome here fixes those three views together so they can never disagree.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    OK = "ok"
    # `#fail`: the model rejects the input (Fal's "model error" shape, a `detail` list).
    MODEL_ERROR = "model_error"
    # FAL_SIMULATOR_ERROR_RATE: the runner crashed (Fal's "request error" shape).
    RUNNER_ERROR = "runner_error"
    # `#badinput`: the model refuses the input when it runs (e.g. an image it cannot fetch).
    INPUT_ERROR = "input_error"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Failure:
    """The three views of one failed request."""

    http_status: int
    error: str  # `error` in the status response
    error_type: str  # `error_type` in the status response and X-Fal-Error-Type
    body: dict[str, Any]  # result body and webhook payload
    retryable: bool

    @property
    def webhook_error(self) -> str:
        return f"Invalid status code: {self.http_status}"

    @property
    def headers(self) -> dict[str, str]:
        return {
            "X-Fal-Error-Type": self.error_type,
            "X-Fal-Retryable": "true" if self.retryable else "false",
        }


CONTENT_FLAGGED = "The content was flagged by a content checker."
RUNNER_CRASHED = "The runner encountered an internal server error."
CANCELLED_BY_CLIENT = "Request cancelled by the client."
IMAGE_NOT_FETCHED = "Failed to download the file. Please check the URL and try again."


def failure_for(outcome: Outcome, model_input: dict[str, Any]) -> Failure | None:
    """The failure views for `outcome`, or None when the request succeeded."""
    if outcome is Outcome.MODEL_ERROR:
        detail = {
            "loc": ["body", "prompt"],
            "msg": CONTENT_FLAGGED,
            "type": "content_policy_violation",
            "url": "https://docs.fal.ai/errors#content_policy_violation",
            "input": model_input.get("prompt"),
        }
        return Failure(
            422, CONTENT_FLAGGED, "content_policy_violation", {"detail": [detail]}, False
        )
    if outcome is Outcome.INPUT_ERROR:
        detail = {
            "loc": ["body", "image_url"],
            "msg": IMAGE_NOT_FETCHED,
            "type": "file_download_error",
            "input": model_input.get("image_url"),
        }
        return Failure(422, IMAGE_NOT_FETCHED, "file_download_error", {"detail": [detail]}, False)
    if outcome is Outcome.RUNNER_ERROR:
        body = {"detail": RUNNER_CRASHED, "error_type": "runner_server_error"}
        return Failure(500, RUNNER_CRASHED, "runner_server_error", body, False)
    if outcome is Outcome.CANCELLED:
        body = {"detail": CANCELLED_BY_CLIENT, "error_type": "client_cancelled"}
        return Failure(499, CANCELLED_BY_CLIENT, "client_cancelled", body, False)
    return None
