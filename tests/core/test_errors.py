"""Errors a browser can read: a bug is a problem+json 500 with the request id, inside CORS."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from tests.support.apps import make_settings

ORIGIN = "https://app.example.com"


class Boom(Exception):
    pass


@pytest.fixture
async def buggy_client() -> AsyncIterator[httpx.AsyncClient]:
    """The real app with CORS on, plus one route with a bug (the only test-only part)."""
    app: FastAPI = create_app(make_settings("postgres://unused/unused", cors_origins=[ORIGIN]))

    @app.get("/api/test-bug")
    async def bug() -> None:
        raise Boom("a bug")

    # raise_app_exceptions: an exception that escaped the app would fail the test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_a_bug_is_a_problem_with_the_request_id_and_cors_headers(
    buggy_client: httpx.AsyncClient,
) -> None:
    response = await buggy_client.get(
        "/api/test-bug", headers={"Origin": ORIGIN, "X-Request-Id": "req-42"}
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-42"
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"x-request-id", "idempotent-replayed", "retry-after"} <= exposed
    body = response.json()
    assert body["code"] == "internal_error" and body["status"] == 500
    assert body["request_id"] == "req-42"
    assert "a bug" not in response.text  # no internals in the answer; they are in the log

    other = await buggy_client.get("/api/test-bug")
    assert other.json()["request_id"] == other.headers["x-request-id"]  # generated when not sent


async def test_handled_errors_carry_the_request_id_too(buggy_client: httpx.AsyncClient) -> None:
    response = await buggy_client.get("/api/nowhere", headers={"X-Request-Id": "req-7"})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found" and response.json()["request_id"] == "req-7"


async def test_a_preflight_may_send_the_request_id_and_delete(
    buggy_client: httpx.AsyncClient,
) -> None:
    preflight = await buggy_client.options(
        "/api/videos/00000000-0000-0000-0000-000000000000",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization, x-request-id, last-event-id",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "DELETE" in preflight.headers["access-control-allow-methods"]
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "x-request-id" in allowed and "idempotency-key" in allowed

    foreign = await buggy_client.options(
        "/api/videos",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert foreign.status_code == 400
    assert "access-control-allow-origin" not in foreign.headers
