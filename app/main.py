"""create_app(): settings, database, routers, error handlers, lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig

from app.catalog import router as catalog_router
from app.catalog.service import ActiveModels
from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker, warm_pool
from app.core.errors import install_error_handlers
from app.core.limits import MULTIPART_OVERHEAD, Limits, LimitsMiddleware
from app.core.logging import configure_logging
from app.core.metrics import Metrics
from app.core.middleware import MaintenanceMode, RequestMiddleware
from app.core.openapi import install_problem_openapi
from app.credits import router as credits_router
from app.fal.client import FalGateway
from app.fal.webhooks import JwksCache
from app.ops import health
from app.ops import router as ops_router
from app.ops.maintenance import MaintenanceFlag
from app.ops.migrate import load_migrations
from app.users import router as users_router
from app.videos import router as videos_router
from app.videos import uploads, webhook_router
from app.videos.dispatch import Dispatcher
from app.videos.reconciler import Reconciler

# Writes that maintenance mode lets through: Fal's deliveries keep jobs (and refunds) moving,
# and the switch itself must stay reachable.
ALWAYS_WRITABLE = frozenset({"/api/webhooks/fal", "/api/admin/maintenance"})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.settings = settings
        app.state.engine = engine
        await warm_pool(engine, settings.db_pool_size)
        app.state.sessions = create_sessionmaker(engine)
        app.state.models = ActiveModels(settings.catalog_refresh_s)
        app.state.migration_files = load_migrations(settings.migrations_dir)
        app.state.maintenance.sessions = app.state.sessions
        app.state.jwks = JwksCache(
            settings.fal_jwks_url,
            ttl_s=settings.jwks_cache_s,
            refetch_min_interval_s=settings.jwks_refetch_min_interval_s,
        )
        reconciler: Reconciler | None = None
        app.state.dispatcher = None
        if settings.dispatch_enabled:
            gateway = FalGateway(settings, metrics)
            dispatcher = Dispatcher(app.state.sessions, gateway, settings)
            app.state.dispatcher = dispatcher
            reconciler = Reconciler(dispatcher, settings.reconcile_interval_s, metrics)
            reconciler.start()
        app.state.reconciler = reconciler
        try:
            yield
        finally:
            if reconciler is not None:
                await reconciler.stop()
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
                "/api/uploads": settings.max_upload_bytes + MULTIPART_OVERHEAD,
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
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Idempotent-Replayed", "X-Request-Id", "Retry-After"],
        )
    install_error_handlers(app)
    install_problem_openapi(
        app,
        write_errors=(MaintenanceMode,),
        always_writable=ALWAYS_WRITABLE,
        without_database=frozenset({"/api/health"}),
    )
    # Routes are matched in order: the busiest first.
    app.include_router(videos_router.router)
    app.include_router(webhook_router.router)
    app.include_router(credits_router.router)
    app.include_router(catalog_router.router)
    app.include_router(uploads.router)
    app.include_router(users_router.router)
    app.include_router(health.router)
    app.include_router(ops_router.router)
    return app
