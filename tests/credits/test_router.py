import asyncio
import time
import uuid

import asyncpg
import httpx

from tests.support.apps import make_settings, serve_app
from tests.support.factories import ADMIN, create_user, grant


def credit_body(user_id: uuid.UUID, amount: int = 100, kind: str = "grant") -> dict[str, object]:
    return {"user_id": str(user_id), "amount": amount, "kind": kind}


async def ledger_rows(db: asyncpg.Connection, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        'SELECT * FROM "creditTransactions" WHERE "userId" = $1 ORDER BY "sequence"', user_id
    )


async def balance(db: asyncpg.Connection, user_id: uuid.UUID) -> int:
    value: int = await db.fetchval('SELECT "creditBalance" FROM users WHERE id = $1', user_id)
    return value


async def test_100_concurrent_retries_charge_once_and_replay_the_same_answer(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await create_user(client)
    headers = {**ADMIN, "Idempotency-Key": "purchase-2026-11-25-0001"}
    body = credit_body(user.id, 500, "purchase") | {"reason": "pack:starter"}

    started = time.monotonic()
    responses = await asyncio.gather(
        *(client.post("/api/admin/credits", json=body, headers=headers) for _ in range(100))
    )
    elapsed = time.monotonic() - started

    assert {r.status_code for r in responses} == {201}
    assert len({r.text for r in responses}) == 1
    replays = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    assert len(replays) == 99
    rows = await ledger_rows(db, user.id)
    assert len(rows) == 1 and rows[0]["amount"] == 500
    assert await balance(db, user.id) == 500
    packs = await db.fetchval('SELECT "purchasedCreditPacks" FROM users WHERE id = $1', user.id)
    assert packs == 1
    print(f"\n[figures] 100 concurrent same-key credits: {len(rows)} ledger row, {elapsed:.2f}s")


async def test_same_key_with_a_different_body_is_422_and_writes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await create_user(client)
    headers = {**ADMIN, "Idempotency-Key": "k-1"}
    first = await client.post("/api/admin/credits", json=credit_body(user.id, 100), headers=headers)
    assert first.status_code == 201
    second = await client.post(
        "/api/admin/credits", json=credit_body(user.id, 200), headers=headers
    )
    assert second.status_code == 422
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["code"] == "idempotency_key_reused"
    assert len(await ledger_rows(db, user.id)) == 1
    assert await balance(db, user.id) == 100


async def test_idempotency_key_missing_or_malformed_is_400(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    missing = await client.post("/api/admin/credits", json=credit_body(user.id), headers=ADMIN)
    assert missing.status_code == 400 and missing.json()["code"] == "idempotency_key_missing"
    for bad in (b"", b"has space", b"x" * 256, "ключ".encode()):
        response = await client.post(
            "/api/admin/credits",
            json=credit_body(user.id),
            headers=[*ADMIN.items(), ("Idempotency-Key", bad)],
        )
        assert response.status_code == 400, bad
        assert response.json()["code"] == "idempotency_key_invalid"


async def test_a_key_held_by_an_in_flight_request_answers_409(database_url: str) -> None:
    async with serve_app(make_settings(database_url, idempotency_wait_s=0.3)) as client:
        user = await create_user(client)
        holder = await asyncpg.connect(database_url)
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(
            """INSERT INTO "idempotencyRequests" (scope, key, method, path, fingerprint)
               VALUES ('admin', 'busy', 'POST', '/api/admin/credits', 'x')"""
        )
        headers = {**ADMIN, "Idempotency-Key": "busy"}
        blocked = await client.post(
            "/api/admin/credits", json=credit_body(user.id), headers=headers
        )
        assert blocked.status_code == 409
        assert blocked.json()["code"] == "idempotency_key_in_flight"
        assert blocked.headers["Retry-After"] == "1"
        await transaction.rollback()
        await holder.close()
        # The holder never committed: the key is free and the request now runs.
        retried = await client.post(
            "/api/admin/credits", json=credit_body(user.id), headers=headers
        )
        assert retried.status_code == 201


async def test_a_failed_request_binds_nothing_to_its_key(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await create_user(client, credits=5)
    headers = {**ADMIN, "Idempotency-Key": "fix-then-retry"}
    body = credit_body(user.id, -10, "adjustment")
    refused = await client.post("/api/admin/credits", json=body, headers=headers)
    assert refused.status_code == 402 and refused.json()["code"] == "insufficient_credits"
    assert len(await ledger_rows(db, user.id)) == 1
    await grant(client, user, 10)
    retried = await client.post("/api/admin/credits", json=body, headers=headers)
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers
    assert await balance(db, user.id) == 5


async def test_second_roll_for_a_period_is_409_and_the_index_enforces_it(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await create_user(client)
    body = credit_body(user.id, 100, "roll") | {"period": "2026-11"}
    first = await client.post(
        "/api/admin/credits", json=body, headers={**ADMIN, "Idempotency-Key": "roll-a"}
    )
    assert first.status_code == 201
    second = await client.post(
        "/api/admin/credits", json=body, headers={**ADMIN, "Idempotency-Key": "roll-b"}
    )
    assert second.status_code == 409 and second.json()["code"] == "credit_roll_exists"
    assert await balance(db, user.id) == 100

    # Bypassing the application entirely: the partial unique index still refuses.
    try:
        await db.execute(
            """INSERT INTO "creditTransactions" ("userId", amount, "balanceAfter", kind,
               "idempotencyKey", period) VALUES ($1, 100, 200, 'roll', 'by-hand', '2026-11')""",
            user.id,
        )
    except asyncpg.UniqueViolationError as error:
        assert error.constraint_name == "creditTransactions_userId_period_roll_key"
    else:
        raise AssertionError("the roll index let a second roll in")


async def test_invalid_movements_are_422_with_nothing_written(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await create_user(client)
    cases = [
        credit_body(user.id, 0),
        credit_body(user.id, -5, "grant"),
        credit_body(user.id, 5, "roll"),
        credit_body(user.id, 5, "grant") | {"period": "2026-11"},
        credit_body(user.id, 5, "debit"),
        {"user_id": "not-a-uuid", "amount": 5, "kind": "grant"},
    ]
    for i, body in enumerate(cases):
        response = await client.post(
            "/api/admin/credits", json=body, headers={**ADMIN, "Idempotency-Key": f"bad-{i}"}
        )
        assert response.status_code == 422, body
        assert response.json()["code"] == "validation_error"
    unknown = await client.post(
        "/api/admin/credits",
        json=credit_body(uuid.uuid4()),
        headers={**ADMIN, "Idempotency-Key": "ghost"},
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "user_not_found"
    assert await db.fetchval('SELECT count(*) FROM "creditTransactions"') == 0
    assert await db.fetchval('SELECT count(*) FROM "idempotencyRequests"') == 0


async def test_users_see_and_move_only_their_own_credits(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, credits=70)
    bob = await create_user(client, credits=30)

    page = (await client.get("/api/credits", headers=alice.auth)).json()
    assert page["balance"] == 70
    assert {t["user_id"] for t in page["data"]} == {str(alice.id)}

    as_user = await client.post(
        "/api/admin/credits",
        json=credit_body(bob.id, -30, "adjustment"),
        headers={**alice.auth, "Idempotency-Key": "steal"},
    )
    assert as_user.status_code == 403 and as_user.json()["code"] == "forbidden"
    assert (await client.get("/api/credits", headers=bob.auth)).json()["balance"] == 30

    assert (await client.get("/api/credits")).status_code == 401
    bad = await client.get("/api/credits", headers={"Authorization": "Bearer vg_nope"})
    assert bad.status_code == 401 and bad.json()["code"] == "unauthorized"
    no_admin = await client.post("/api/admin/users", json={"email": "x@example.com"})
    assert no_admin.status_code == 401


async def test_ledger_pages_walk_every_row_once(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    for amount in range(1, 8):
        await grant(client, user, amount)
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/credits", params=params, headers=user.auth)).json()
        seen += [t["amount"] for t in page["data"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == list(range(7, 0, -1))
    bad = await client.get("/api/credits", params={"cursor": "garbage"}, headers=user.auth)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
