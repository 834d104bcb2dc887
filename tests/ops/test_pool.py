"""The connection pools (the driver pool of the hot paths, the session pool of the rest):
opened at start-up, and a connection the server closed is never used."""

import gc

import asyncpg

from tests.support.apps import make_settings, serve_app, wait_until
from tests.support.factories import create_user

OTHER_BACKENDS = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND backend_type = 'client backend'
"""


async def test_the_pools_are_opened_at_start_up(database_url: str, db: asyncpg.Connection) -> None:
    assert await db.fetch(OTHER_BACKENDS) == []
    async with serve_app(make_settings(database_url, db_pool_size=4, db_driver_pool_size=3)):
        # No request yet: the lifespan opened both pools whole, and nothing beyond them.
        assert len(await db.fetch(OTHER_BACKENDS)) == 4 + 3


async def test_connections_the_server_closed_cost_at_most_one_503_each(
    database_url: str, db: asyncpg.Connection
) -> None:
    # No pool pre-ping (app/core/db.py): a connection the server closed is dropped at
    # checkout once asyncpg has seen the socket close; one checked out just before that
    # fails its request with a retryable 503 and is discarded. Never a 500, never reused.
    size = 4
    settings = make_settings(database_url, db_pool_size=size, db_driver_pool_size=size)
    async with serve_app(settings) as client:
        user = await create_user(client, credits=10_000)
        pids = [row["pid"] for row in await db.fetch(OTHER_BACKENDS)]
        assert len(pids) == 2 * size
        # What a PostgreSQL restart or an idle-connection timeout does to the whole pool.
        await db.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)

        async def gone() -> bool:
            live = {row["pid"] for row in await db.fetch(OTHER_BACKENDS)}
            return not live & set(pids)

        await wait_until(gone, within=5, what="the terminated backends to exit")
        statuses = []
        for n in range(2 * size + 1):  # every pooled connection is checked out at least twice
            response = await client.post(
                "/api/videos",
                json={"model": "kling-v2-master-t2v", "prompt": "after the restart"},
                headers={**user.auth, "Idempotency-Key": f"after-restart-{n}"},
            )
            statuses.append(response.status_code)
            if response.status_code == 503:
                assert response.json()["code"] == "database_unavailable"
                assert response.headers["Retry-After"]
        assert set(statuses) <= {202, 503}, statuses
        assert statuses.count(503) <= size and statuses[-size:] == [202] * size, statuses
        balance = (await client.get("/api/credits", headers=user.auth)).json()["balance"]
        assert balance == 10_000 - 168 * statuses.count(202)  # a 503 charged nothing


async def test_what_start_up_made_is_kept_out_of_the_collectors_walk(database_url: str) -> None:
    # A full collection walking the ~140k start-up objects was a 70 ms pause every few
    # thousand requests (bench/README.md); frozen, they are not walked.
    assert gc.get_freeze_count() == 0
    async with serve_app(make_settings(database_url)):
        frozen = gc.get_freeze_count()
    assert frozen > 10_000
    assert gc.get_freeze_count() == 0  # an ended app's objects are collectable again
