"""Our gateway over fal-client: the only module that imports `fal_client`.

Four calls (submit, status, result, cancel) plus upload, each with an explicit time budget,
each failure classified as retryable (timeouts, 408/409/429, 5xx, transport) or permanent
(other 4xx: Fal refused the input and will refuse it again). How fal-client 1.0.3 behaves
underneath (docs/fal.md): it retries a request that timed out, so a submit runs on its own
client whose HTTP timeout is longer than our budget for it: our budget ends the call first,
and a POST that may have reached Fal is never sent twice by the library. Such a submit is
reported as `maybe_accepted`: Fal may have queued the job, and its webhook may still come.
"""

import asyncio
import importlib
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

import httpx

from app.core.config import FAL_CALL_BUDGET_FACTOR, Settings
from app.core.metrics import Metrics

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


# Our submit budget ends this long before fal-client's own HTTP timeout would fire.
SUBMIT_TIMEOUT_SLACK_S = 5.0
# Transport failures that happen before a request leaves: nothing reached Fal.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class FalError(Exception):
    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        body: Any = None,
        error_type: str | None = None,
        maybe_accepted: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.body = body  # Fal's error body (JSON), when it sent one
        self.error_type = error_type
        # A submit whose answer never came: Fal may have queued the job all the same.
        self.maybe_accepted = maybe_accepted


@dataclass(frozen=True)
class FalStatus:
    state: Literal["queued", "in_progress", "completed"]
    queue_position: int | None = None
    error: str | None = None
    error_type: str | None = None


def _json_body(response: Any) -> Any:
    try:
        return response.json() if isinstance(response, httpx.Response) else None
    except ValueError:
        return None


def _load_fal_client(settings: Settings) -> ModuleType:
    # Imported on first use, not at start-up: fal-client reads FAL_QUEUE_RUN_HOST when it is
    # imported, and `vidgen dev` sets that (simulator mode) before serving.
    module = importlib.import_module("fal_client")
    if settings.fal_storage_url:
        # fal-client has no setting for its storage hosts; in simulator mode they are ours.
        client_module = importlib.import_module("fal_client.client")
        setattr(client_module, "REST_URL", settings.fal_storage_url)  # noqa: B010
        setattr(client_module, "CDN_URL", settings.fal_storage_url)  # noqa: B010
    return module


class FalGateway:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._metrics = metrics
        self._fal = _load_fal_client(settings)
        self._budget_s = settings.fal_timeout_s * FAL_CALL_BUDGET_FACTOR
        self._client = self._fal.AsyncClient(
            key=settings.fal_key, default_timeout=settings.fal_timeout_s
        )
        self._submit_budget_s = settings.fal_submit_timeout_s
        self._submit_client = self._fal.AsyncClient(
            key=settings.fal_key,
            default_timeout=settings.fal_submit_timeout_s + SUBMIT_TIMEOUT_SLACK_S,
        )
        self.webhook_url = settings.public_base_url.rstrip("/") + "/api/webhooks/fal"

    async def _call(self, what: str, call: Awaitable[T], budget_s: float | None = None) -> T:
        try:
            # fal-client retries 429s and transport errors itself; this bounds the whole call.
            return await asyncio.wait_for(call, timeout=budget_s or self._budget_s)
        except (TimeoutError, httpx.TransportError, self._fal.FalClientHTTPError) as error:
            failure = self._classify(what, error)
            self._metrics.fal_errors.labels(what, str(failure.retryable).lower()).inc()
            raise failure from error

    def _classify(self, what: str, error: Exception) -> FalError:
        if isinstance(error, TimeoutError):
            return FalError(f"Fal {what} timed out", retryable=True, maybe_accepted=True)
        if isinstance(error, httpx.TransportError):
            sent = not isinstance(error, NOT_SENT)
            return FalError(
                f"Fal {what}: {type(error).__name__}", retryable=True, maybe_accepted=sent
            )
        status = int(getattr(error, "status_code", 0))
        retryable = status >= 500 or status in RETRYABLE_STATUS
        message = f"Fal {what} failed with HTTP {status}: {str(error)[:500]}"
        return FalError(
            message,
            retryable=retryable,
            status_code=status,
            body=_json_body(getattr(error, "response", None)),
            error_type=getattr(error, "error_type", None),
        )

    def webhook_url_for(self, video_id: uuid.UUID) -> str:
        """Our webhook URL naming the video: a late webhook of a submit whose answer we never
        got still finds its job (app/videos/service.py, adoption)."""
        return f"{self.webhook_url}?{urlencode({'video_id': str(video_id)})}"

    async def submit(self, endpoint: str, arguments: dict[str, Any], video_id: uuid.UUID) -> str:
        """Queue a request whose result Fal will post to our webhook; return its request id.

        FalError.maybe_accepted says the call ended without an answer after it was sent.
        """
        call = self._submit_client.submit(
            endpoint, arguments, webhook_url=self.webhook_url_for(video_id)
        )
        with self._metrics.fal_submit_seconds.time():
            handle = await self._call("submit", call, self._submit_budget_s)
        request_id: str = handle.request_id
        return request_id

    async def status(self, endpoint: str, request_id: str) -> FalStatus:
        try:
            status = await self._call("status", self._client.status(endpoint, request_id))
        except (ValueError, KeyError, TypeError) as error:
            # fal-client's status parsing raises these on a shape it does not know.
            self._metrics.fal_errors.labels("status", "true").inc()
            raise FalError(
                f"Fal status of {request_id} had an unknown shape: {error!r}", retryable=True
            ) from error
        if isinstance(status, self._fal.Queued):
            return FalStatus("queued", queue_position=status.position)
        if isinstance(status, self._fal.InProgress):
            return FalStatus("in_progress")
        return FalStatus(
            "completed",
            error=getattr(status, "error", None),
            error_type=getattr(status, "error_type", None),
        )

    async def result(self, endpoint: str, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "result", self._client.result(endpoint, request_id)
        )
        return result

    async def cancel(self, endpoint: str, request_id: str) -> None:
        try:
            await self._call("cancel", self._client.cancel(endpoint, request_id))
        except FalError as error:
            if error.status_code == 400:  # ALREADY_COMPLETED: nothing left to stop
                return
            raise

    async def upload(self, data: bytes, content_type: str, file_name: str) -> str:
        url: str = await self._call(
            "upload", self._client.upload(data, content_type, file_name=file_name)
        )
        return url
