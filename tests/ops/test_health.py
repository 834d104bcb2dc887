import tempfile
import time
from pathlib import Path

import httpx

from app.core.config import Settings
from app.ops import migrate
from app.ops.localpg import LocalPostgres, free_port
from tests.support.apps import make_settings, serve_app


async def test_health_reports_database_and_migrations(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    applied = len(migrate.load_migrations(settings.migrations_dir))
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "migrations": {"applied": applied, "pending": 0},
        "maintenance": False,
    }


async def test_health_is_503_degraded_while_migrations_are_pending(empty_database_url: str) -> None:
    async with serve_app(make_settings(empty_database_url)) as client:
        response = await client.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["database"] == "ok"
    assert body["migrations"]["applied"] == 0 and body["migrations"]["pending"] > 0


async def test_health_is_503_within_3s_once_the_database_stops() -> None:
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="vidgen-health-pg-")), free_port(), True)
    server.start()
    try:
        await migrate.deploy(server.url, make_settings(server.url).migrations_dir)
        async with serve_app(make_settings(server.url)) as client:
            assert (await client.get("/api/health")).status_code == 200
            server.stop()
            started = time.monotonic()
            response = await client.get("/api/health")
            elapsed = time.monotonic() - started
    finally:
        server.destroy()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
    assert "Traceback" not in response.text
    assert elapsed < 3.0
