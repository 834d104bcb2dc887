"""`vidgen serve`: the production server."""

import uvicorn


def serve(
    # Loopback unless told otherwise: a server reachable from the network is a choice
    # (containers pass --host 0.0.0.0).
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
) -> None:
    """Production server (uvicorn)."""
    # access_log off: the app writes its own JSON access line (app/core/middleware.py).
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
    )
