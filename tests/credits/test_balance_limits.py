"""Money cannot overflow: balances past 2^31 work, refunds always land, grants are capped."""

import uuid

import asyncpg
import httpx

from app.credits.ledger import MAX_BALANCE
from app.ops.audit import run_audit
from tests.support.factories import ADMIN, ApiUser, create_user, grant
from tests.support.helpers import libpq

BIG_GRANT = 10_000_000  # the largest one movement may be


async def test_a_balance_past_two_to_the_31_still_charges_and_refunds(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str
) -> None:
    user = await create_user(client)
    for _ in range(215):  # 2.15 billion credits: past INTEGER's 2,147,483,647
        assert (await grant(client, user, BIG_GRANT)).status_code == 201
    balance = 215 * BIG_GRANT
    created = await client.post(
        "/api/videos",
        json={"model": "kling-v2-master-t2v", "prompt": "a very rich cat"},
        headers={**user.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert created.status_code == 202, created.text
    canceled = await client.post(f"/api/videos/{created.json()['id']}/cancel", headers=user.auth)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    after = (await client.get("/api/credits", headers=user.auth)).json()["balance"]
    assert after == balance > 2**31
    assert (await run_audit(libpq(database_url))).ok


async def test_no_grant_lifts_a_balance_past_the_cap(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user: ApiUser = await create_user(client)
    # Near the cap, set through the ledger's own columns (reaching it by grants would take
    # 100,000 of them): balance and one matching ledger row.
    await db.execute(
        """WITH moved AS (UPDATE users SET "creditBalance" = $2 WHERE id = $1 RETURNING id)
           INSERT INTO "creditTransactions" ("userId", amount, "balanceAfter", kind,
                                             "idempotencyKey")
           SELECT id, $2, $2, 'adjustment', 'near-the-cap:' || id FROM moved""",
        user.id,
        MAX_BALANCE - 5,
    )
    refused = await client.post(
        "/api/admin/credits",
        json={"user_id": str(user.id), "amount": 6, "kind": "grant"},
        headers={**ADMIN, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert refused.status_code == 422 and refused.json()["code"] == "balance_limit_exceeded"
    assert (await grant(client, user, 5)).status_code == 201
    balance = await db.fetchval('SELECT "creditBalance" FROM users WHERE id = $1', user.id)
    assert balance == MAX_BALANCE
