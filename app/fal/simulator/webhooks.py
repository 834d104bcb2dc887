"""Signed webhook delivery, the way Fal does it: POST, verify-able bytes, retry until 2xx.

The body is serialised once and the same bytes go out on every attempt and every
duplicate copy; each attempt is re-signed with a fresh timestamp, because a receiver
rejects timestamps older than five minutes and real Fal retries for hours. Retrying on
non-2xx and transport errors with exponential backoff mirrors Fal's policy, scaled down
(`FAL_SIMULATOR_WEBHOOK_ATTEMPTS`, `FAL_SIMULATOR_WEBHOOK_BACKOFF_S`).
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from app.fal.simulator.jobs import DeliveryAttempt, Job, WebhookState
from app.fal.simulator.media import SampleVideo
from app.fal.simulator.settings import SimulatorSettings
from app.fal.simulator.signing import WebhookSigner

logger = logging.getLogger(__name__)


def webhook_body(job: Job, video: SampleVideo) -> bytes:
    """The JSON Fal posts when a request finishes: OK with the output, or ERROR with details."""
    failure = job.failure
    body: dict[str, Any] = {
        "request_id": job.request_id,
        "gateway_request_id": job.request_id,
        "status": "ERROR" if failure else "OK",
        "payload": failure.body if failure else job.output(video),
        "error": failure.webhook_error if failure else None,
    }
    return json.dumps(body, separators=(",", ":")).encode()


class WebhookSender:
    def __init__(
        self,
        signer: WebhookSigner,
        client: httpx.AsyncClient,
        video: SampleVideo,
        settings: Callable[[], SimulatorSettings],
    ) -> None:
        self.signer = signer
        self.client = client
        self.video = video
        # Read per delivery, so PUT /_simulator/config applies to later deliveries.
        self.settings = settings

    async def deliver(self, job: Job) -> None:
        """Send every planned copy of `job`'s webhook, then record how it went."""
        assert job.webhook_url is not None
        raw_body = webhook_body(job, self.video)
        all_delivered = True
        try:
            for copy in range(1, job.webhook_copies + 1):
                delivered = await self._deliver_copy(job, job.webhook_url, raw_body, copy)
                all_delivered = all_delivered and delivered
        except Exception:
            # A bug here must not leave the job "delivering" forever for a test to wait on.
            logger.exception("webhook delivery for %s crashed", job.request_id)
            all_delivered = False
        job.webhook_state = WebhookState.DELIVERED if all_delivered else WebhookState.FAILED

    async def _deliver_copy(self, job: Job, url: str, raw_body: bytes, copy: int) -> bool:
        settings = self.settings()
        for attempt in range(1, settings.webhook_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(settings.webhook_backoff_s * 2 ** (attempt - 2))
            record = DeliveryAttempt(copy, attempt, url, time.time(), None, None)
            job.deliveries.append(record)
            try:
                response = await self.client.post(
                    url,
                    content=raw_body,
                    headers=self._headers(job.request_id, settings.user_id, raw_body),
                    timeout=settings.webhook_timeout_s,
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                record.error = f"{type(exc).__name__}: {exc}"
                logger.info("webhook %s attempt %d failed: %s", job.request_id, attempt, exc)
                continue
            record.status_code = response.status_code
            if record.ok:
                return True
            logger.info(
                "webhook %s attempt %d answered %d", job.request_id, attempt, response.status_code
            )
        return False

    def _headers(self, request_id: str, user_id: str, raw_body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        return {
            "Content-Type": "application/json",
            "User-Agent": "fal-simulator",
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": user_id,
            "X-Fal-Webhook-Timestamp": timestamp,
            "X-Fal-Webhook-Signature": self.signer.sign(request_id, user_id, timestamp, raw_body),
        }
