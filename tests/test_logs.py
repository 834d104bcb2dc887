"""The logs of a real `vidgen serve`: JSON lines a collector can parse, each request's id on
what it logged, and no secret anywhere (app/core/logging.py)."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from app.fal.simulator.process import SimulatorProcess
from tests.support.apps import ADMIN_TOKEN, AppProcess
from tests.support.database import PgServer
from tests.support.factories import create_user
from tests.support.helpers import libpq
from tests.support.jobs import create, finished

REQUIRED = {"timestamp", "level", "logger", "message"}


@pytest.fixture
async def url_with_password(pg_server: PgServer, database_url: str) -> AsyncIterator[str]:
    """The test database through a role of its own with a password, so DATABASE_URL holds
    a secret the logs must never show."""
    role, password = f"log_{uuid.uuid4().hex[:8]}", f"db-password-{uuid.uuid4().hex}"
    await pg_server.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    parts = urlsplit(database_url)
    netloc = f"{role}:{password}@{parts.hostname}:{parts.port}"
    yield urlunsplit(parts._replace(netloc=netloc))
    await pg_server.execute(f"DROP ROLE IF EXISTS {role}")


def read_lines(log_file: Path) -> list[dict[str, Any]]:
    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    parsed = []
    for line in lines:
        entry = json.loads(line)  # every line, uvicorn's included, is one JSON object
        assert isinstance(entry, dict) and entry.keys() >= REQUIRED, line
        moment = datetime.fromisoformat(entry["timestamp"])
        assert moment.utcoffset() == timedelta(0), line  # UTC
        parsed.append(entry)
    return parsed


async def test_serve_logs_json_lines_with_request_ids_and_no_secrets(
    url_with_password: str,
    database_url: str,
    simulator: SimulatorProcess,
    tmp_path: Path,
) -> None:
    fal_key = f"fal-key-id:fal-secret-{uuid.uuid4().hex}"
    signing_key = f"media-signing-key-{uuid.uuid4().hex}"
    app = AppProcess(
        url_with_password,
        simulator,
        tmp_path,
        FAL_KEY=fal_key,
        MEDIA_SIGNING_KEY=signing_key,
    ).start()
    bogus = f"bogus-bearer-{uuid.uuid4().hex}"
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            traced = await client.get(
                "/api/credits", headers={**user.auth, "X-Request-Id": "trace-ok-1"}
            )
            refused = await client.get(
                "/api/credits",
                headers={"Authorization": f"Bearer {bogus}", "X-Request-Id": "trace-401-1"},
            )
            video = await finished(client, user, (await create(client, user))["id"])
            media_url = video["video"]["url"]
            media = await client.get(media_url)
            # A bug's 500: the ledger table gone, the exception logged inside the request.
            conn = await asyncpg.connect(libpq(database_url))
            try:
                await conn.execute('ALTER TABLE "creditTransactions" RENAME TO ledger_gone')
            finally:
                await conn.close()
            broken = await client.get(
                "/api/credits", headers={**user.auth, "X-Request-Id": "trace-500-1"}
            )
    finally:
        app.stop()

    assert (traced.status_code, refused.status_code, media.status_code) == (200, 401, 200)
    assert broken.status_code == 500, broken.text
    entries = read_lines(app.log_file)

    text = app.log_file.read_text()
    password = urlsplit(url_with_password).password
    sig = parse_qs(urlsplit(media_url).query)["sig"][0]
    secrets = {
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "FAL_KEY": fal_key,
        "FAL_KEY secret part": fal_key.split(":", 1)[1],
        "MEDIA_SIGNING_KEY": signing_key,
        "the user's API key": user.api_key,
        "the bogus bearer token": bogus,
        "the DATABASE_URL password": password,
        "the media URL's sig": sig,
    }
    leaked = [name for name, value in secrets.items() if value and value in text]
    assert not leaked, f"secrets in the log: {leaked}"

    by_request: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if "request_id" in entry:
            by_request.setdefault(entry["request_id"], []).append(entry)
    access = {e["request_id"]: e for e in entries if e["logger"] == "vidgen.access"}
    assert access["trace-ok-1"]["status"] == 200
    assert access["trace-401-1"]["status"] == 401
    # The exception, logged by the error handler while serving the request, carries its id,
    # and its traceback is one JSON string on one line.
    errors = [e for e in by_request["trace-500-1"] if e["level"] == "error"]
    assert errors, by_request["trace-500-1"]
    assert "ledger_gone" not in errors[0]["message"]
    assert "Traceback" in errors[0]["exception"]
    assert "creditTransactions" in errors[0]["exception"]
    assert access["trace-500-1"]["status"] == 500
    # uvicorn's own lines, in the same format.
    assert any(e["logger"].startswith("uvicorn") for e in entries), entries[:5]
