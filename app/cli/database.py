"""What every command that touches the database needs: its URL, one unit of work, and one
line instead of a traceback when the database cannot be reached."""

import asyncio
import errno
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import parse_qs, urlsplit

import asyncpg
import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.console import fail
from app.core.config import get_settings, to_libpq_url
from app.core.db import create_engine, create_sessionmaker, unit_of_work


@asynccontextmanager
async def one_transaction() -> AsyncIterator[AsyncSession]:
    """A command's unit of work, on an engine of its own that is closed afterwards."""
    engine = create_engine(get_settings())
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            yield session
    finally:
        await engine.dispose()


async def _connect_and_close(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    await connection.close()


def ensure_reachable(dsn: str) -> None:
    """Connect once: for a command about to hand the database to pg_dump or psql, so an
    unreachable one is reported as every other command reports it."""
    asyncio.run(_connect_and_close(dsn))


def database_url() -> str:
    url = get_settings().database_url
    if not url:
        fail("DATABASE_URL is not set. Set it, or use `vidgen dev` for a local database.")
    return to_libpq_url(url)


# Connecting failed, as opposed to a statement: the server refused us or never answered.
# (Other OSErrors, a full disk or a missing pg_dump, are the command's own failures.)
NETWORK_ERRNOS = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT,
    errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENETUNREACH, errno.ENETDOWN, errno.EADDRNOTAVAIL,
})  # fmt: skip
CONNECT_FAILURES = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.InvalidAuthorizationSpecificationError,  # 28000, 28P01: role or password
    asyncpg.InvalidCatalogNameError,  # 3D000: no such database
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.TooManyConnectionsError,  # 53300
)
# Exit status for "could not reach the database": distinct from a command's own failures (1).
UNREACHABLE_EXIT = 2


def connect_failure(error: BaseException) -> str | None:
    """Why connecting to the database failed, in a few words; None if `error` is not that.

    Looks through what wraps it: SQLAlchemy's `orig`, and the exception's cause or context.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return "unknown host"
        if isinstance(current, TimeoutError):
            return "timed out"
        if isinstance(current, OSError) and current.errno in NETWORK_ERRNOS:
            if current.errno == errno.ECONNREFUSED:
                return "connection refused"
            return os.strerror(current.errno).lower()
        if isinstance(current, OSError) and str(current).startswith("Multiple exceptions:"):
            return "connection refused" if "Connect call failed" in str(current) else str(current)
        if isinstance(current, CONNECT_FAILURES):
            return str(current).splitlines()[0] if str(current) else type(current).__name__
        orig = getattr(current, "orig", None)
        pending += [orig if isinstance(orig, BaseException) else None]
        pending += [current.__cause__, current.__context__]
    return None


def database_address() -> str:
    """`host:port` of DATABASE_URL, for messages (never its credentials)."""
    url = urlsplit(get_settings().database_url or "")
    host = url.hostname or parse_qs(url.query).get("host", ["localhost"])[0]
    try:
        port = url.port or 5432
    except ValueError:
        port = 5432
    return f"{host}:{port}"


@contextmanager
def unreachable_database_in_one_line() -> Iterator[None]:
    """Wrap the whole command line: a database that cannot be reached is one line on stderr
    naming its address and the cause, and exit status 2, whichever command met it."""
    try:
        yield
    except Exception as error:
        cause = connect_failure(error)
        if cause is None:
            raise
        message = f"error: cannot reach PostgreSQL at {database_address()} ({cause})"
        typer.secho(message, fg=typer.colors.RED, err=True)
        raise SystemExit(UNREACHABLE_EXIT) from None
