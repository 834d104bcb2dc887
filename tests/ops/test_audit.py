import asyncpg
import httpx

from tests.support.factories import create_user, grant
from tests.support.helpers import run_vidgen


async def test_audit_passes_on_a_consistent_ledger_and_fails_on_a_tampered_one(
    client: httpx.AsyncClient, database_url: str
) -> None:
    user = await create_user(client, credits=100)
    await grant(client, user, 50, kind="purchase", reason="pack:pro")

    clean = run_vidgen("audit", env={"DATABASE_URL": database_url})
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "audit clean" in clean.stdout
    assert "balance equals the sum" in clean.stdout

    # By hand, as a careless operator might: the ledger row changes, the balance does not.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            'UPDATE "creditTransactions" SET amount = 75 WHERE "userId" = $1 AND amount = 50',
            user.id,
        )
    finally:
        await conn.close()

    tampered = run_vidgen("audit", env={"DATABASE_URL": database_url})
    assert tampered.returncode == 1
    assert "FAIL  balance equals the sum of the user's ledger" in tampered.stdout
    assert "FAIL  every balanceAfter equals the running sum" in tampered.stdout
    assert str(user.id) in tampered.stdout


async def test_audit_finds_a_drifted_active_job_count_and_recounting_repairs_it(
    client: httpx.AsyncClient, database_url: str
) -> None:
    user = await create_user(client, credits=1_000)
    created = await client.post(
        "/api/videos",
        json={"model": "kling-v2-master-t2v", "prompt": "counted"},
        headers={**user.auth, "Idempotency-Key": "counted"},
    )
    assert created.status_code == 202
    assert run_vidgen("audit", env={"DATABASE_URL": database_url}).returncode == 0

    # What a writer that does not keep the counter (another app inserting jobs) leaves.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute('UPDATE "users" SET "activeJobs" = 0 WHERE "id" = $1', user.id)
    finally:
        await conn.close()

    drifted = run_vidgen("audit", env={"DATABASE_URL": database_url})
    assert drifted.returncode == 1
    assert "FAIL  every user's active-job count equals their unfinished videos" in drifted.stdout
    assert "'active_jobs': 0, 'unfinished_videos': 1" in drifted.stdout
    assert "repair: vidgen recount-active-jobs" in drifted.stdout

    recounted = run_vidgen("recount-active-jobs", env={"DATABASE_URL": database_url})
    assert recounted.returncode == 0, recounted.stderr
    assert f"{user.id} {user.email}: 0 -> 1" in recounted.stdout
    assert "recounted 1 user(s)" in recounted.stdout
    assert run_vidgen("audit", env={"DATABASE_URL": database_url}).returncode == 0
    # Nothing left to recount: a second run changes nothing.
    again = run_vidgen("recount-active-jobs", env={"DATABASE_URL": database_url})
    assert "recounted 0 user(s)" in again.stdout


async def test_cli_credits_add_prints_the_transaction_or_explains_the_failure(
    client: httpx.AsyncClient, database_url: str
) -> None:
    user = await create_user(client)
    env = {"DATABASE_URL": database_url}
    added = run_vidgen("credits", "add", "--user", user.email, "--amount", "25", env=env)
    assert added.returncode == 0, added.stderr
    assert '"amount": 25' in added.stdout and '"balance_after": 25' in added.stdout

    by_id = run_vidgen(
        "credits", "add", "--user", str(user.id), "--amount", "5", "--kind", "roll",
        "--period", "2026-12", env=env,
    )  # fmt: skip
    assert by_id.returncode == 0, by_id.stderr

    unknown = run_vidgen("credits", "add", "--user", "ghost@example.com", "--amount", "5", env=env)
    assert unknown.returncode == 1
    assert "user_not_found" in unknown.stderr and "ghost@example.com" in unknown.stderr

    overdraw = run_vidgen(
        "credits", "add", "--user", user.email, "--amount", "-100", "--kind", "adjustment", env=env
    )
    assert overdraw.returncode == 1 and "insufficient_credits" in overdraw.stderr
    page = (await client.get("/api/credits", headers=user.auth)).json()
    assert page["balance"] == 30
