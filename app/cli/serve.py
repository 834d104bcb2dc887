"""`vidgen serve`: the production server."""

import uvicorn


def serve(
    host: str = "0.0.0.0",
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
