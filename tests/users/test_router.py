"""POST /api/admin/users: who may create users, and the API key shown only once."""

import uuid

import asyncpg
import httpx

from tests.support.factories import ADMIN


async def test_admin_creates_users_with_a_key_shown_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/admin/users", json={"email": "Ada@Example.com"}, headers=ADMIN
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ada@example.com" and body["credit_balance"] == 0
    stored = await db.fetchval(
        'SELECT "apiKeyHash" FROM users WHERE id = $1', uuid.UUID(body["id"])
    )
    assert body["api_key"] not in stored and len(stored) == 64
    again = await client.post("/api/admin/users", json={"email": "ada@example.com"}, headers=ADMIN)
    assert again.status_code == 409 and again.json()["code"] == "email_taken"
    invalid = await client.post("/api/admin/users", json={"email": "nope"}, headers=ADMIN)
    assert invalid.status_code == 422
