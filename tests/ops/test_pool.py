"""The connection pool: opened at start-up, and a connection the server closed is never used."""

import asyncpg

from tests.conftest import make_settings, serve_app
from tests.factories import create_user
from tests.fal.apps import wait_until

OTHER_BACKENDS = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND backend_type = 'client backend'
"""


async def test_the_pool_is_opened_at_start_up(database_url: str, db: asyncpg.Connection) -> None:
    assert await db.fetch(OTHER_BACKENDS) == []
    async with serve_app(make_settings(database_url, db_pool_size=4)):
        # No request yet: the lifespan opened the whole pool, and nothing beyond it.
        assert len(await db.fetch(OTHER_BACKENDS)) == 4


async def test_connections_closed_by_the_server_are_replaced_without_an_error(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with serve_app(make_settings(database_url, db_pool_size=4)) as client:
        user = await create_user(client, credits=1000)
        pids = [row["pid"] for row in await db.fetch(OTHER_BACKENDS)]
        assert pids
        # What a PostgreSQL restart or an idle-connection timeout does to the whole pool.
        await db.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)

        async def gone() -> bool:
            live = {row["pid"] for row in await db.fetch(OTHER_BACKENDS)}
            return not live & set(pids)

        await wait_until(gone, within=5, what="the terminated backends to exit")
        for _ in range(6):  # more requests than the pool has connections
            response = await client.get("/api/credits", headers=user.auth)
            assert response.status_code == 200, response.text
        created = await client.post(
            "/api/videos",
            json={"model": "kling-v2-master-t2v", "prompt": "after the restart"},
            headers={**user.auth, "Idempotency-Key": "after-restart"},
        )
        assert created.status_code == 202, created.text
