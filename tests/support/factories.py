"""Small helpers that make users and credits through the real API and services."""

import uuid
from dataclasses import dataclass

import httpx

from tests.support.apps import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class ApiUser:
    id: uuid.UUID
    email: str
    api_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def create_user(client: httpx.AsyncClient, credits: int = 0) -> ApiUser:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post("/api/admin/users", json={"email": email}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    user = ApiUser(uuid.UUID(body["id"]), body["email"], body["api_key"])
    if credits:
        await grant(client, user, credits)
    return user


async def grant(
    client: httpx.AsyncClient, user: ApiUser, amount: int, kind: str = "grant", **extra: object
) -> httpx.Response:
    response = await client.post(
        "/api/admin/credits",
        json={"user_id": str(user.id), "amount": amount, "kind": kind, **extra},
        headers={**ADMIN, "Idempotency-Key": f"grant-{uuid.uuid4()}"},
    )
    assert response.status_code == 201, response.text
    return response
