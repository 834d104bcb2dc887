"""`vidgen serve`: the production server."""

import uvicorn

from app.core.config import get_settings
from app.core.logging import log_config
from app.core.metrics import share_between_workers


def serve(
    # Loopback unless told otherwise: a server reachable from the network is a choice
    # (containers pass --host 0.0.0.0).
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
) -> None:
    """Production server (uvicorn)."""
    if workers > 1:  # one /metrics for all of them (app/core/metrics.py)
        share_between_workers()
    # access_log off: the app writes its own JSON access line (app/core/middleware.py).
    # On SIGTERM: streams end at once (app/videos/events.py), requests in flight get
    # SHUTDOWN_TIMEOUT_S to finish, then uvicorn cancels them and runs the app's shutdown.
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=log_config(),
        timeout_graceful_shutdown=get_settings().shutdown_timeout_s,
    )
