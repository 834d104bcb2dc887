"""Per-user rate limits shared by every replica (app/core/ratelimit.py)."""

import uuid

from tests.support.apps import make_settings, serve_app
from tests.support.factories import ADMIN, create_user

T2V = {"model": "kling-v2-master-t2v", "prompt": "a kite over dunes"}


async def test_the_create_limit_holds_across_two_replicas_and_says_when_to_retry(
    database_url: str,
) -> None:
    settings = make_settings(database_url, rate_limit_creates_per_minute=5)
    async with serve_app(settings) as first, serve_app(settings) as second:
        user = await create_user(first, credits=100_000)
        answers = []
        for n in range(8):  # alternating replicas: one bucket for both
            replica = (first, second)[n % 2]
            headers = {**user.auth, "Idempotency-Key": str(uuid.uuid4())}
            answers.append(await replica.post("/api/videos", json=T2V, headers=headers))
        other = await create_user(first, credits=100_000)
        headers = {**other.auth, "Idempotency-Key": str(uuid.uuid4())}
        elsewhere = await second.post("/api/videos", json=T2V, headers=headers)
        admin = await first.post(
            "/api/admin/credits",
            json={"user_id": str(user.id), "amount": 5, "kind": "grant"},
            headers={**ADMIN, "Idempotency-Key": str(uuid.uuid4())},
        )
    assert [a.status_code for a in answers] == [202] * 5 + [429] * 3
    refused = answers[5]
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 12  # one token per 12 s at 5 a minute
    assert elsewhere.status_code == 202  # another user's bucket
    assert admin.status_code == 201  # admin routes are not limited


async def test_quotes_have_their_own_bucket_and_zero_turns_a_limit_off(database_url: str) -> None:
    settings = make_settings(
        database_url, rate_limit_quotes_per_minute=2, rate_limit_creates_per_minute=0
    )
    async with serve_app(settings) as client:
        user = await create_user(client, credits=100_000)
        quotes = [
            (await client.post("/api/videos/quote", json=T2V, headers=user.auth)).status_code
            for _ in range(3)
        ]
        creates = [
            (
                await client.post(
                    "/api/videos",
                    json=T2V,
                    headers={**user.auth, "Idempotency-Key": str(uuid.uuid4())},
                )
            ).status_code
            for _ in range(8)
        ]
    assert quotes == [200, 200, 429]
    assert creates == [202] * 8


async def test_a_refused_request_does_no_work(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_creates_per_minute=1)
    async with serve_app(settings) as client:
        user = await create_user(client, credits=1_000)
        key = str(uuid.uuid4())
        ok = await client.post(
            "/api/videos", json=T2V, headers={**user.auth, "Idempotency-Key": key}
        )
        again = await client.post(
            "/api/videos", json=T2V, headers={**user.auth, "Idempotency-Key": str(uuid.uuid4())}
        )
        balance = (await client.get("/api/credits", headers=user.auth)).json()["balance"]
    assert ok.status_code == 202 and again.status_code == 429
    assert balance == 1_000 - ok.json()["credits_charged"]
