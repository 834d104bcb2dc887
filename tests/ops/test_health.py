import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from app.core.config import Settings
from app.ops import migrate
from app.ops.localpg import LocalPostgres, free_port
from tests.support.apps import make_settings, serve_app

# A migration from the release after this one: its name sorts after every shipped one.
NEXT_RELEASE = "29991231000000_next_release"


def migrations_with(tmp_path: Path, extra_sql: str) -> Path:
    """This code's migrations plus NEXT_RELEASE: the migrations directory of a newer release."""
    directory = tmp_path / "migrations"
    shutil.copytree(make_settings("postgres://unused/unused").migrations_dir, directory)
    (directory / NEXT_RELEASE).mkdir()
    (directory / NEXT_RELEASE / "migration.sql").write_text(extra_sql)
    return directory


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


async def test_livez_answers_without_credentials_and_readyz_is_ready_when_up_to_date(
    client: httpx.AsyncClient,
) -> None:
    live = await client.get("/livez")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "behind": [], "ahead": 0}


async def test_readyz_is_ready_while_the_database_is_ahead_of_the_code(
    database_url: str, tmp_path: Path
) -> None:
    # `migrate deploy` of the next release has run; this (old) replica is still serving.
    newer = migrations_with(tmp_path, 'CREATE TABLE "next_release_table" ("id" INTEGER);')
    assert await migrate.deploy(database_url, newer) == [NEXT_RELEASE]
    async with serve_app(make_settings(database_url)) as client:
        ready = await client.get("/readyz")
        health = await client.get("/api/health")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "behind": [], "ahead": 1}
    assert health.status_code == 503  # /api/health wants the exact schema: the smoke suite's view


async def test_readyz_is_503_while_the_database_is_behind_the_code(
    database_url: str, tmp_path: Path
) -> None:
    # The next release's replica starts before its migration has been deployed.
    newer = migrations_with(tmp_path, 'CREATE TABLE "next_release_table" ("id" INTEGER);')
    async with serve_app(make_settings(database_url, migrations_dir=newer)) as client:
        ready = await client.get("/readyz")
        live = await client.get("/livez")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "behind",
        "database": "ok",
        "behind": [NEXT_RELEASE],
        "ahead": 0,
    }
    assert live.status_code == 200


async def test_readyz_counts_a_failed_migration_as_behind(
    database_url: str, tmp_path: Path
) -> None:
    broken = migrations_with(tmp_path, 'ALTER TABLE "no_such_table" ADD COLUMN "x" INTEGER;')
    with pytest.raises(migrate.MigrationError):
        await migrate.deploy(database_url, broken)
    async with serve_app(make_settings(database_url, migrations_dir=broken)) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["behind"] == [NEXT_RELEASE]


async def test_readyz_is_503_on_an_unmigrated_database(empty_database_url: str) -> None:
    async with serve_app(make_settings(empty_database_url)) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    shipped = migrate.load_migrations(make_settings(empty_database_url).migrations_dir)
    assert ready.json()["behind"] == [m.name for m in shipped]


async def test_readyz_is_503_within_3s_and_livez_200_once_the_database_stops() -> None:
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="vidgen-readyz-pg-")), free_port(), True)
    server.start()
    try:
        await migrate.deploy(server.url, make_settings(server.url).migrations_dir)
        async with serve_app(make_settings(server.url)) as client:
            assert (await client.get("/readyz")).status_code == 200
            server.stop()
            started = time.monotonic()
            ready = await client.get("/readyz")
            elapsed = time.monotonic() - started
            live = await client.get("/livez")
    finally:
        server.destroy()
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "database": "unreachable",
        "behind": [],
        "ahead": 0,
    }
    assert elapsed < 3.0
    assert live.status_code == 200 and live.json() == {"status": "ok"}


async def test_livez_and_readyz_are_not_in_the_openapi_documents(
    client: httpx.AsyncClient,
) -> None:
    # For the kubelet, not for API clients (nor the SDK generated from the document).
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/api/health" in paths
    assert "/livez" not in paths and "/readyz" not in paths
