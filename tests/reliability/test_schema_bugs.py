"""Bugs the reliability suite found, each reproduced deterministically.

Each test pins a bug the fuzzer or the restart test found, now fixed. In-process app
(no Fal), so each runs in milliseconds.
"""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support.factories import ADMIN, ApiUser, create_user
from tests.support.traffic import T2V

I2V = "kling-v2.1-standard-i2v"


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Like the shared `client`, but a server error is an answer (500), as a real client sees it."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def documented(app: FastAPI, method: str, path: str) -> set[int]:
    document = app.state.openapi_admin() if path.startswith("/api/admin/") else app.openapi()
    return {int(code) for code in document["paths"][path][method.lower()]["responses"]}


async def test_event_stream_events_match_the_document(app: FastAPI, api: httpx.AsyncClient) -> None:
    user = await create_user(api, credits=1000)
    created = await api.post(
        "/api/videos",
        json={"model": T2V, "prompt": "one event, then the end"},
        headers={**user.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    video_id = created.json()["id"]
    canceled = await api.post(f"/api/videos/{video_id}/cancel", headers=user.auth)
    assert canceled.status_code == 200  # terminal: the stream sends one event and ends
    response = await api.get(f"/api/videos/{video_id}/events", headers=user.auth)
    assert response.status_code == 200 and response.text.startswith("event: status")

    schema = schemathesis.openapi.from_dict(app.openapi())
    case = schema["/api/videos/{video_id}/events"]["GET"].Case(
        path_parameters={"video_id": video_id}, headers=user.auth
    )
    case.validate_response(response, checks=[response_schema_conformance])


UNPARSABLE = [
    ("/api/admin/users", {"Content-Type": "application/json"}, b"\x17\xff{"),
    ("/api/admin/maintenance", {"Content-Type": "application/json"}, b"\x17\xff{"),
    ("/api/uploads", {"Content-Type": "multipart/form-data; boundary=b"}, b"--b\r\n--b--\r\n"),
]


@pytest.mark.parametrize(("path", "headers", "body"), UNPARSABLE, ids=[p for p, _, _ in UNPARSABLE])
async def test_an_unparsable_body_answer_is_documented(
    app: FastAPI, api: httpx.AsyncClient, path: str, headers: dict[str, str], body: bytes
) -> None:
    user = await create_user(api)
    auth = ADMIN if path.startswith("/api/admin") else user.auth
    response = await api.post(path, content=body, headers={**auth, **headers})
    assert response.status_code == 400, response.text
    assert response.status_code in documented(app, "POST", path)


async def test_rotating_a_users_key_answer_is_documented(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    user = await create_user(api)
    body = {"email": user.email, "rotate_existing": True}
    response = await api.post("/api/admin/users", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert 200 in documented(app, "POST", "/api/admin/users")


def nul_requests(user: ApiUser) -> dict[str, tuple[str, dict[str, Any], dict[str, str]]]:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    video = {"model": T2V, "prompt": "a cat"}
    return {
        "video prompt": ("/api/videos", video | {"prompt": "a\x00cat"}, user.auth | key),
        "video negative_prompt": (
            "/api/videos",
            video | {"negative_prompt": "no\x00dogs"},
            user.auth | key,
        ),
        "video model": ("/api/videos", video | {"model": "kling\x00"}, user.auth | key),
        "video image_url": (
            "/api/videos",
            video | {"model": I2V, "image_url": "https://img.example.com/\x00.png"},
            user.auth | key,
        ),
        "credits reason": (
            "/api/admin/credits",
            {"user_id": str(user.id), "amount": 5, "kind": "grant", "reason": "promo\x00"},
            ADMIN | key,
        ),
        "maintenance reason": (
            "/api/admin/maintenance",
            {"enabled": False, "reason": "upgrade\x00"},
            ADMIN,
        ),
    }


NUL_FIELDS = [
    "video prompt",
    "video negative_prompt",
    "video model",
    "video image_url",
    "credits reason",
    "maintenance reason",
]


@pytest.mark.parametrize("field", NUL_FIELDS)
async def test_a_nul_character_in_text_is_refused_not_a_server_error(
    api: httpx.AsyncClient, field: str
) -> None:
    user = await create_user(api, credits=1000)
    path, body, headers = nul_requests(user)[field]
    response = await api.post(path, json=body, headers=headers)
    assert response.status_code < 500, response.text
    assert response.status_code in {400, 404, 422}
    assert response.headers["content-type"] == "application/problem+json"
