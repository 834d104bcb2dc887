"""create_app(): settings, database, routers, error handlers, lifespan."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import get_args

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig

from app.catalog import router as catalog_router
from app.catalog.service import ActiveModels
from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker, open_driver_pool, warm_pool
from app.core.errors import Unauthorized, install_error_handlers
from app.core.limits import MULTIPART_OVERHEAD, Limits, LimitsMiddleware
from app.core.logging import configure_logging
from app.core.metrics import Metrics
from app.core.middleware import MaintenanceMode, RequestMiddleware
from app.core.openapi import OpenApiLayout, install_openapi
from app.credits import router as credits_router
from app.fal.client import FalGateway
from app.fal.model_spec import ModelKind
from app.fal.results import FailureReason
from app.fal.webhooks import JwksCache
from app.media import router as media_router
from app.media.store import open_store
from app.ops import health
from app.ops import router as ops_router
from app.ops.maintenance import MaintenanceFlag
from app.ops.migrate import load_migrations
from app.playground import router as playground_router
from app.users import router as users_router
from app.users.deps import admin_principal
from app.users.tokens import AuthProviderUnavailable
from app.videos import events, events_router, uploads, webhook_router
from app.videos import router as videos_router
from app.videos.dispatch import Dispatcher
from app.videos.finalise import Finaliser
from app.videos.reconciler import Reconciler
from app.videos.schemas import Links

# Writes that maintenance mode lets through: Fal's deliveries keep jobs (and refunds) moving,
# and the switch itself must stay reachable.
ALWAYS_WRITABLE = frozenset({"/api/webhooks/fal", "/api/admin/maintenance"})

API_DESCRIPTION = """Text-to-video and image-to-video on Fal's models, paid in credits.

Authenticate with `Authorization: Bearer <API key or the frontend's JWT>`. Errors are
`application/problem+json` with a stable `code` (the `ErrorCode` enum) and the request id,
also sent as `X-Request-Id`. Lists are `{"data": [...], "next_cursor"}`: pass `next_cursor`
as `cursor` for the next page. `POST /api/videos` needs an `Idempotency-Key`; a retry with the
same key replays the first answer (`Idempotent-Replayed: true`). 429 answers carry
`Retry-After`."""
# The OpenAPI operations `<tag>-<action>` whose function name does not say it.
OPERATION_IDS = {
    "my_credits": "credits-list",
    "upload_image": "uploads-create",
    "health": "health-check",
    "switch_maintenance": "maintenance-switch",
}
VIDEO_EXAMPLES = {
    "text-to-video": {
        "summary": "A text-to-video request",
        "value": {
            "model": "kling-v2-master-t2v",
            "prompt": "A red fox trotting through fresh snow at dawn, cinematic",
            "duration": 5,
            "aspect_ratio": "16:9",
        },
    },
    "image-to-video": {
        "summary": "An image-to-video request (image_url: an https URL or an upload's)",
        "value": {
            "model": "kling-v2.1-standard-i2v",
            "prompt": "The camera slowly pushes in as leaves drift past",
            "image_url": "https://example.com/still.png",
            "duration": 5,
        },
    },
}


def openapi_layout(settings: Settings) -> OpenApiLayout:
    return OpenApiLayout(
        description=API_DESCRIPTION,
        servers=[settings.public_base_url],
        hidden=("/api/webhooks/", "/metrics", "/media/", "/playground"),
        operation_ids=OPERATION_IDS,
        tags={
            "videos": "Create, price, follow, cancel and delete video jobs",
            "uploads": "Images for image-to-video",
            "credits": "The balance and its ledger",
            "models": "Models on sale, their parameters and prices",
            "health": "Liveness and readiness",
            "users": "Users and their API keys (admin)",
            "maintenance": "The write gate (admin)",
        },
        enums={
            "ModelKind": get_args(ModelKind),
            # A failed or canceled video's `error.code`: Fal's reasons, our deadline, a cancel.
            "VideoErrorCode": (*get_args(FailureReason), "timeout", "canceled"),
        },
        narrow={
            "ModelPublic.kind": "ModelKind",
            "VideoPublic.kind": "ModelKind",
            "Quote.kind": "ModelKind",
            "VideoError.code": "VideoErrorCode",
        },
        examples={"videos-create": VIDEO_EXAMPLES, "videos-quote": VIDEO_EXAMPLES},
        security_errors=(Unauthorized, AuthProviderUnavailable),
        write_errors=(MaintenanceMode,),
        always_writable=ALWAYS_WRITABLE,
        without_database=frozenset({"/api/health"}),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.settings = settings
        app.state.engine = engine
        await warm_pool(engine, settings.db_pool_size)
        app.state.driver_pool = await open_driver_pool(settings)
        app.state.sessions = create_sessionmaker(engine)
        app.state.models = ActiveModels(settings.catalog_refresh_s)
        app.state.migration_files = load_migrations(settings.migrations_dir)
        app.state.maintenance.sessions = app.state.sessions
        app.state.jwks = JwksCache(
            settings.fal_jwks_url,
            ttl_s=settings.jwks_cache_s,
            refetch_min_interval_s=settings.jwks_refetch_min_interval_s,
        )
        media = open_store(settings)
        app.state.media = media
        app.state.links = Links(media, settings.media_url_ttl_s, settings.public_base_url)
        app.state.video_watch = events.VideoWatch(app.state.sessions, settings, app.state.links)
        reconciler: Reconciler | None = None
        finaliser: Finaliser | None = None
        app.state.dispatcher = None
        if settings.dispatch_enabled:
            gateway = FalGateway(settings, metrics)
            dispatcher = Dispatcher(app.state.sessions, gateway, settings, media)
            app.state.dispatcher = dispatcher
            reconciler = Reconciler(dispatcher, settings.reconcile_interval_s, metrics)
            reconciler.start()
            finaliser = Finaliser(app.state.sessions, media, settings, metrics)
            finaliser.start()
        app.state.reconciler = reconciler
        app.state.finaliser = finaliser
        # What start-up made (modules, routes, schemas, the pools: ~140k objects) lives as
        # long as the process: moved out of the collector's sight, a full collection no
        # longer walks it. That walk was a 70 ms pause every few thousand requests, the
        # creates' tail latency (bench/README.md).
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # an app ended inside a longer-lived process (tests) is collectable
            await app.state.video_watch.close()  # ends open event streams
            if reconciler is not None:
                await reconciler.stop()
            if finaliser is not None:
                await finaliser.stop()
            await app.state.driver_pool.close()
            await engine.dispose()

    configure_logging()
    metrics = Metrics()
    # No OpenTelemetry: metrics are Prometheus (/metrics) and logs our own JSON lines.
    telemetry_off: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="vidgen", version="0.1.0", lifespan=lifespan, telemetry=telemetry_off)
    app.state.metrics = metrics
    # The flag's sessions are attached at startup, when the engine exists.
    app.state.maintenance = MaintenanceFlag(None, settings.maintenance_refresh_s)  # type: ignore[arg-type]
    # Inner to the request middleware, so a refused body still gets its request id and log line.
    app.add_middleware(
        LimitsMiddleware,
        limits=Limits(
            json_bytes=settings.max_json_body_bytes,
            header_bytes=settings.max_header_bytes,
            header_count=settings.max_header_count,
            by_path={
                "/api/webhooks/fal": settings.max_webhook_body_bytes,
                "/api/uploads": settings.upload_max_bytes + MULTIPART_OVERHEAD,
            },
        ),
    )
    app.add_middleware(
        RequestMiddleware,
        metrics=metrics,
        writes_paused=app.state.maintenance.enabled,
        always_writable=ALWAYS_WRITABLE,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "X-Request-Id",
                "Last-Event-ID",  # a fetch-based event-stream reader resuming
            ],
            expose_headers=["Idempotent-Replayed", "X-Request-Id", "Retry-After"],
        )
    install_error_handlers(app)
    install_openapi(app, openapi_layout(settings), admin_guard=admin_principal)
    # Routes are matched in order: the busiest first.
    app.include_router(videos_router.router)
    app.include_router(events_router.router)
    app.include_router(webhook_router.router)
    app.include_router(credits_router.router)
    app.include_router(catalog_router.router)
    app.include_router(uploads.router)
    app.include_router(users_router.router)
    app.include_router(health.router)
    app.include_router(ops_router.router)
    app.include_router(media_router.router)
    app.include_router(playground_router.router)
    return app
