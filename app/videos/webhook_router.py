"""Fal's webhook endpoint: the deliveries that finish our video jobs."""

import json
import logging
import uuid
from typing import Literal, get_args

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from app.core.config import Settings
from app.core.deps import driver_connection
from app.core.errors import AppError, problem_responses
from app.fal import results, webhooks
from app.videos import service as videos

router = APIRouter(tags=["webhooks"])
logger = logging.getLogger(__name__)


class MalformedWebhook(AppError):
    status, code, title = 400, "malformed_webhook", "Malformed webhook body"


Ack = Literal["applied", "adopted", "duplicate", "unknown"]


class WebhookAck(BaseModel):
    result: Ack


# Rendered once: the answer is one of three, and this route is the busiest one (Fal's retries).
ACK_BODIES = {r: WebhookAck(result=r).model_dump_json().encode() for r in get_args(Ack)}


@router.post(
    "/api/webhooks/fal",
    response_model=WebhookAck,
    responses=problem_responses(webhooks.InvalidWebhook, MalformedWebhook),
)
async def fal_webhook(request: Request, video_id: uuid.UUID | None = None) -> Response:
    """Fal's result delivery. Verified (Ed25519, JWKS, timestamp) before anything is read.

    Duplicates and deliveries for finished jobs are 200 no-ops; so are unknown request ids
    (logged), since Fal would otherwise retry them for hours. `video_id` is ours, set in the
    webhook URL at submit: it finds the job of a submit whose answer was lost.
    """
    settings: Settings = request.app.state.settings
    body = await request.body()
    jwks: webhooks.JwksCache = request.app.state.jwks
    try:
        verified = await webhooks.verify(
            request.headers,
            body,
            jwks,
            tolerance_s=settings.webhook_tolerance_s,
            expected_user_id=settings.fal_webhook_user_id,
        )
    except webhooks.InvalidWebhook:
        request.app.state.metrics.webhook_outcomes["invalid_signature"].inc()  # alerted on
        raise
    try:
        payload = json.loads(body)
    except ValueError as error:
        raise MalformedWebhook("body is not JSON") from error
    if not isinstance(payload, dict) or payload.get("request_id") != verified.request_id:
        raise MalformedWebhook("body request_id does not match the signed request id")
    outcome = results.from_webhook(payload)
    # A connection only once the delivery is verified. One statement, so its own
    # transaction: status, event and any refund commit together.
    async with driver_connection(request) as driver:
        result = await videos.finish_by_fal_request(driver, verified.request_id, outcome, video_id)
    if result == "unknown":
        logger.warning("webhook for unknown Fal request %s ignored", verified.request_id)
    elif outcome.succeeded and result != "duplicate" and request.app.state.finaliser:
        request.app.state.finaliser.wake()  # copy the output now, after this answer
    request.app.state.metrics.webhook_outcomes[result].inc()
    return Response(ACK_BODIES[result], media_type="application/json")
