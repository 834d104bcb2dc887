"""SQL written once and run by either executor: SQLAlchemy, or asyncpg on the hot paths.

Creating a video and ingesting a webhook send their statements straight to the asyncpg
connection under the request's pooled connection: SQLAlchemy's statement layer costs more
CPU per statement than the round trip itself (bench/README.md). Everything else keeps
SQLAlchemy. `Statement` keeps the two from drifting apart: one text, with `:name`
parameters, compiled once into asyncpg's `$n` form.
"""

from typing import Any, cast

import asyncpg
from sqlalchemy import TextClause, text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

_ASYNCPG = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


class Statement:
    """One SQL text. Write casts as `CAST(:x AS type)`: `:x::type` is not a parameter."""

    def __init__(self, sql: str) -> None:
        self.text: TextClause = text(sql)
        compiled = self.text.compile(dialect=_ASYNCPG)
        self.native = str(compiled)
        self._names: list[str] = list(compiled.positiontup or [])

    def args(self, params: dict[str, Any]) -> list[Any]:
        """`params` in the order of the native text's `$1, $2, …`."""
        return [params[name] for name in self._names]

    async def fetchrow(self, driver: asyncpg.Connection, **params: Any) -> asyncpg.Record | None:
        return await driver.fetchrow(self.native, *self.args(params))

    async def fetchval(self, driver: asyncpg.Connection, **params: Any) -> Any:
        return await driver.fetchval(self.native, *self.args(params))

    async def fetch(self, driver: asyncpg.Connection, **params: Any) -> list[asyncpg.Record]:
        return await driver.fetch(self.native, *self.args(params))

    async def execute(self, driver: asyncpg.Connection, **params: Any) -> str:
        """The command tag (e.g. `UPDATE 1`)."""
        return await driver.execute(self.native, *self.args(params))


async def driver_of(connection: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a pooled SQLAlchemy connection.

    Only for work outside any SQLAlchemy transaction on that connection: asyncpg's own
    `transaction()` then owns BEGIN/COMMIT, and SQLAlchemy's reset on return to the pool
    has nothing to roll back.
    """
    raw = await connection.get_raw_connection()
    return cast(asyncpg.Connection, raw.driver_connection)
