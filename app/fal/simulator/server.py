"""The simulator's ASGI app: Fal's queue, storage and JWKS endpoints plus `/_simulator/`."""

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.fal.simulator import control_api, queue_api, storage_api
from app.fal.simulator.certs import ensure_certificates
from app.fal.simulator.jobs import FalQueue
from app.fal.simulator.media import UploadStore, sample_video
from app.fal.simulator.runtime import Runtime
from app.fal.simulator.settings import SimulatorSettings
from app.fal.simulator.signing import WebhookSigner
from app.fal.simulator.webhooks import WebhookSender

logger = logging.getLogger(__name__)


def create_app(
    state_dir: Path, base_url: str, settings: SimulatorSettings | None = None
) -> FastAPI:
    """Build the simulator app; `base_url` is the https origin clients reach it on."""
    settings = settings or SimulatorSettings()
    video = sample_video()
    runtime = Runtime(
        base_url=base_url.rstrip("/"),
        initial_settings=settings,
        queue=FalQueue(settings),
        signer=WebhookSigner.load_or_create(state_dir),
        uploads=UploadStore(),
        video=video,
    )
    ca_file = ensure_certificates(state_dir).ca_file

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Webhook targets are usually plain http on loopback; an https one may use our CA.
        tls = ssl.create_default_context()
        tls.load_verify_locations(cafile=ca_file)
        async with httpx.AsyncClient(verify=tls, trust_env=False) as client:
            sender = WebhookSender(runtime.signer, client, video, lambda: runtime.settings)
            runtime.queue.set_webhook_dispatch(sender.deliver)
            logger.info("Fal simulator ready at %s (%s)", runtime.base_url, settings)
            try:
                yield
            finally:
                await runtime.queue.shutdown()

    app = FastAPI(title="Fal simulator", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    app.include_router(control_api.router)
    app.include_router(storage_api.router)
    # Last: its catch-all paths would otherwise swallow the routes above.
    app.include_router(queue_api.router)
    return app
