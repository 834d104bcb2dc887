"""The queries `vidgen dev` runs against its local server, outside any database of ours."""

import asyncpg

from app.core.sql import Statement

DATABASE_EXISTS = Statement("SELECT 1 FROM pg_database WHERE datname = :name")


async def database_exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await DATABASE_EXISTS.fetchval(conn, name=name))


async def create_database(conn: asyncpg.Connection, name: str) -> None:
    # CREATE DATABASE takes no parameters, so the name goes into the text: pass only names
    # the code chose (DEV_DATABASE), never user input.
    await Statement(f'CREATE DATABASE "{name}"').execute(conn)
