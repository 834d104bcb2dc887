"""Maintenance mode, metrics and request logs."""

import logging

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings
from tests.support.apps import make_settings, serve_app
from tests.support.factories import ADMIN, create_user
from tests.support.helpers import run_vidgen

T2V = {"model": "kling-v2-master-t2v", "prompt": "a quiet harbour at dawn"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    parsed = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return parsed


async def test_maintenance_blocks_writes_but_not_reads(
    database_url: str, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, maintenance_refresh_s=0.01)
    async with serve_app(settings) as client:
        user = await create_user(client, credits=500)
        switched = run_vidgen("maintenance", "on", env={"DATABASE_URL": database_url})
        assert switched.returncode == 0, switched.stderr

        created = await client.post(
            "/api/videos", json=T2V, headers={**user.auth, "Idempotency-Key": "during"}
        )
        assert created.status_code == 503
        assert created.json()["code"] == "maintenance" and created.headers["Retry-After"]
        assert (await client.get("/api/videos", headers=user.auth)).status_code == 200
        assert (await client.get("/api/credits", headers=user.auth)).status_code == 200
        health = await client.get("/api/health")
        assert health.status_code == 200 and health.json()["maintenance"] is True
        assert await db.fetchval("SELECT count(*) FROM videos") == 0

        off = await client.post("/api/admin/maintenance", json={"enabled": False}, headers=ADMIN)
        assert off.status_code == 200
        created = await client.post(
            "/api/videos", json=T2V, headers={**user.auth, "Idempotency-Key": "after"}
        )
        assert created.status_code == 202


async def test_metrics_can_require_a_token(database_url: str) -> None:
    async with serve_app(make_settings(database_url, metrics_token="scrape-secret")) as client:
        assert (await client.get("/metrics")).status_code == 401
        ok = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert ok.status_code == 200


async def test_each_request_logs_one_json_line_without_secrets(
    client: httpx.AsyncClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    user = await create_user(client)
    caplog.set_level(logging.INFO, logger="vidgen.access")
    logging.getLogger("vidgen").propagate = True  # let caplog see it for this test
    caplog.clear()
    try:
        response = await client.get(
            "/api/credits", headers={**user.auth, "X-Request-Id": "trace-123"}
        )
    finally:
        logging.getLogger("vidgen").propagate = False
    assert response.headers["X-Request-Id"] == "trace-123"
    # (caplog may hold a record twice: once per handler it reached). The fields travel as the
    # record's `extra`, which the JSON formatter writes as keys of the line.
    fields = ("request_id", "method", "route", "status", "duration_ms", "user_id")
    records = dict.fromkeys(r for r in caplog.records if r.name == "vidgen.access")
    lines = [{name: getattr(record, name) for name in fields} for record in records]
    assert lines == [
        {
            "request_id": "trace-123",
            "method": "GET",
            "route": "/api/credits",
            "status": 200,
            "duration_ms": lines[0]["duration_ms"],
            "user_id": str(user.id),
        }
    ]
    assert user.api_key not in caplog.text and settings.admin_token not in caplog.text
    generated = await client.get("/api/health")
    assert len(generated.headers["X-Request-Id"]) == 32
    # Probes are counted in the metrics, not logged.
    caplog.clear()
    logging.getLogger("vidgen").propagate = True
    try:
        assert (await client.get("/livez")).status_code == 200
    finally:
        logging.getLogger("vidgen").propagate = False
    assert not [r for r in caplog.records if r.name == "vidgen.access"]
