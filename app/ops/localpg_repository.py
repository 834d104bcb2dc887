"""The queries `vidgen dev` runs against its local server, outside any database of ours."""

import asyncpg

DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = $1"


async def database_exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval(DATABASE_EXISTS, name))


async def create_database(conn: asyncpg.Connection, name: str) -> None:
    # CREATE DATABASE takes no parameters, so the name goes into the text: pass only names
    # the code chose (DEV_DATABASE), never user input.
    await conn.execute(f'CREATE DATABASE "{name}"')
