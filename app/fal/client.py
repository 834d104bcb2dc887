"""Our gateway over fal-client: the only module that imports `fal_client`.

Four calls (submit, status, result, cancel) plus upload, each with an explicit timeout,
each failure classified as retryable (timeouts, 408/409/429, 5xx, transport) or permanent
(other 4xx: Fal refused the input and will refuse it again).
"""

import asyncio
import importlib
from collections.abc import Awaitable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, TypeVar

import httpx

from app.core.config import Settings
from app.ops.metrics import Metrics

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


class FalError(Exception):
    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code


@dataclass(frozen=True)
class FalStatus:
    state: Literal["queued", "in_progress", "completed"]
    queue_position: int | None = None
    error: str | None = None
    error_type: str | None = None


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
        self._timeout = settings.fal_timeout_s
        self._client = self._fal.AsyncClient(key=settings.fal_key, default_timeout=self._timeout)
        self.webhook_url = settings.public_base_url.rstrip("/") + "/api/webhooks/fal"

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        try:
            # fal-client retries 429s and transport errors itself; this bounds the whole call.
            return await asyncio.wait_for(call, timeout=self._timeout * 3)
        except (TimeoutError, httpx.TransportError, self._fal.FalClientHTTPError) as error:
            failure = self._classify(what, error)
            self._metrics.fal_errors.labels(what, str(failure.retryable).lower()).inc()
            raise failure from error

    def _classify(self, what: str, error: Exception) -> FalError:
        if isinstance(error, TimeoutError):
            return FalError(f"Fal {what} timed out", retryable=True)
        if isinstance(error, httpx.TransportError):
            return FalError(f"Fal {what}: {type(error).__name__}", retryable=True)
        status = int(getattr(error, "status_code", 0))
        retryable = status >= 500 or status in RETRYABLE_STATUS
        message = f"Fal {what} failed with HTTP {status}: {str(error)[:500]}"
        return FalError(message, retryable=retryable, status_code=status)

    async def submit(self, endpoint: str, arguments: dict[str, Any]) -> str:
        """Queue a request whose result Fal will post to our webhook; return its request id."""
        with self._metrics.fal_submit_seconds.time():
            handle = await self._call(
                "submit", self._client.submit(endpoint, arguments, webhook_url=self.webhook_url)
            )
        request_id: str = handle.request_id
        return request_id

    async def status(self, endpoint: str, request_id: str) -> FalStatus:
        status = await self._call("status", self._client.status(endpoint, request_id))
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
