"""`vidgen migrate deploy | status | resolve`; the runner is app/ops/migrate.py."""

import asyncio
from datetime import timedelta
from typing import Annotated

import typer

from app.cli.console import fail
from app.cli.database import database_url
from app.core.config import get_settings
from app.ops import migrate
from app.ops.backup.verify import latest_valid_backup

migrate_app = typer.Typer(no_args_is_help=True, help="Forward-only SQL migrations (Prisma layout).")


@migrate_app.command("deploy")
def migrate_deploy(
    skip_backup_check: Annotated[
        bool, typer.Option(help="deploy onto a database with data without a recent backup")
    ] = False,
) -> None:
    """Apply pending migrations, each in its own transaction, under an advisory lock."""
    settings, dsn = get_settings(), database_url()
    if not skip_backup_check and asyncio.run(migrate.holds_data(dsn)):
        max_age = timedelta(hours=settings.migrate_backup_max_age_hours)
        if latest_valid_backup(settings.backup_dir, max_age) is None:
            fail(
                f"This database holds data and {settings.backup_dir} has no valid backup newer "
                f"than {settings.migrate_backup_max_age_hours:g}h. Run `vidgen backup create` "
                "first (or pass --skip-backup-check if you really mean it)."
            )
    try:
        applied = asyncio.run(migrate.deploy(dsn, settings.migrations_dir))
    except migrate.MigrationError as error:
        fail(str(error))
    for name in applied:
        typer.echo(f"applied  {name}")
    if tables := migrate.tables_created(settings.migrations_dir, applied):
        asyncio.run(migrate.vacuum_analyze(dsn, tables))
        typer.echo(f"VACUUM ANALYZE {', '.join(tables)}")
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
