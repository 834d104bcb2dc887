"""`vidgen`: the one entry point for running and operating the service (DESIGN §9)."""

import asyncio
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, NoReturn

import asyncpg
import typer
import uvicorn

from app.core.config import PROJECT_ROOT, get_settings, to_libpq_url
from app.ops import migrate
from app.ops.localpg import LocalPostgres, LocalPostgresError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
migrate_app = typer.Typer(no_args_is_help=True, help="Forward-only SQL migrations (Prisma layout).")
app.add_typer(migrate_app, name="migrate")

DEV_DATA_DIR = PROJECT_ROOT / ".data" / "postgres"
DEV_PG_PORT = 54329
DEV_DATABASE = "vidgen"


def fail(message: str) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def database_url() -> str:
    url = get_settings().database_url
    if not url:
        fail("DATABASE_URL is not set. Set it, or use `vidgen dev` for a local database.")
    return to_libpq_url(url)


@migrate_app.command("deploy")
def migrate_deploy() -> None:
    """Apply pending migrations, each in its own transaction, under an advisory lock."""
    try:
        applied = asyncio.run(migrate.deploy(database_url(), get_settings().migrations_dir))
    except migrate.MigrationError as error:
        fail(str(error))
    for name in applied:
        typer.echo(f"applied  {name}")
    typer.echo(f"{len(applied)} migration(s) applied; database is up to date.")


@migrate_app.command("status")
def migrate_status() -> None:
    """List applied / pending / modified migrations; exit 1 unless up to date."""
    status = asyncio.run(migrate.read_status(database_url(), get_settings().migrations_dir))
    for name in status.applied:
        typer.echo(f"applied   {name}")
    for name in status.modified:
        typer.echo(f"MODIFIED  {name}  (changed on disk after it was applied)")
    for row in status.failed:
        typer.echo(f"FAILED    {row.migration_name}  ({row.logs})")
    for name in status.pending:
        typer.echo(f"pending   {name}")
    for name in status.missing_locally:
        typer.echo(f"MISSING   {name}  (applied to the database, not found on disk)")
    if not status.up_to_date:
        fail("Database is NOT up to date.")
    typer.echo("Database is up to date.")


@migrate_app.command("resolve")
def migrate_resolve(
    rolled_back: Annotated[str, typer.Option("--rolled-back", help="failed migration name")],
) -> None:
    """Mark a failed migration as rolled back so the next deploy retries it (Prisma P3009)."""
    try:
        asyncio.run(migrate.resolve_rolled_back(database_url(), rolled_back))
    except migrate.MigrationError as error:
        fail(str(error))
    typer.echo(f"marked {rolled_back} as rolled back; `vidgen migrate deploy` will retry it.")


@app.command()
def serve(
    host: str = "0.0.0.0",
    port: int = 8000,
    workers: int = 1,
) -> None:
    """Production server (uvicorn)."""
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers)


async def ensure_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def start_dev_postgres() -> tuple[LocalPostgres, str]:
    server = LocalPostgres(DEV_DATA_DIR, DEV_PG_PORT)
    if not (server.data_dir.exists() or server.can_use(server.data_dir.parent)):
        # As root the server runs as `postgres`, which may not reach a checkout in a private
        # directory; keep the data in a per-checkout directory it can reach instead.
        digest = hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:12]
        server.data_dir = Path(tempfile.gettempdir()) / f"vidgen-dev-{digest}" / "postgres"
        typer.echo(f"note: {DEV_DATA_DIR.parent} is not reachable by user `{server.run_as}`")
    typer.echo(f"starting local PostgreSQL in {DEV_DATA_DIR} on 127.0.0.1:{DEV_PG_PORT}")
    server.start()
    asyncio.run(ensure_database(server.url, DEV_DATABASE))
    return server, server.url_for(DEV_DATABASE)


@app.command()
def dev(port: int = 8000, host: str = "127.0.0.1") -> None:
    """Run locally: own PostgreSQL when DATABASE_URL is unset, migrate, serve."""
    server: LocalPostgres | None = None
    try:
        if not get_settings().database_url:
            server, url = start_dev_postgres()
            os.environ["DATABASE_URL"] = url
            get_settings.cache_clear()
        migrate_deploy()
        uvicorn.run("app.main:create_app", factory=True, host=host, port=port)
    except LocalPostgresError as error:
        fail(str(error))
    finally:
        if server is not None:
            typer.echo("stopping local PostgreSQL")
            server.stop()


def main() -> None:
    app(prog_name=Path(sys.argv[0]).name if sys.argv else "vidgen")
