"""`vidgen backup create | status | restore | prune` (README, "Commands").

The logic is app/ops/backup/."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from app.cli.console import fail, progress_on_terminal
from app.cli.database import database_url, ensure_reachable
from app.core.config import get_settings
from app.ops.audit import run_audit
from app.ops.backup.create import create_backup
from app.ops.backup.errors import BackupError
from app.ops.backup.files import (
    BackupFile,
    list_backups,
    prune_backups,
    read_metadata,
    resolve_backup_path,
)
from app.ops.backup.pgtools import describe_target
from app.ops.backup.restore import current_row_counts, restore_backup
from app.ops.backup.signing import configured_key
from app.ops.backup.units import human_age, human_bytes
from app.ops.backup.verify import BackupInfo, verify_backup

backup_app = typer.Typer(
    no_args_is_help=True, help="pg_dump backups: create, verify, restore, prune."
)


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


@backup_app.command("create")
def create() -> None:
    """Dump the database to BACKUP_DIR/backup_YYYYMMDD_HHMMSS.sql.gz with checksum and metadata."""
    settings = get_settings()
    dsn = database_url()
    started = time.monotonic()
    columns = (
        SpinnerColumn(),
        TextColumn("dumping: {task.completed:,.0f} bytes of SQL"),
        TransferSpeedColumn(),
        TextColumn("➜ {task.fields[written]} gzipped"),
        TimeElapsedColumn(),
    )
    with progress_on_terminal(*columns) as progress:
        task = (
            progress.add_task("dump", total=None, written="0 B") if progress is not None else None
        )

        def show(dumped: int, written: int) -> None:
            if progress is not None and task is not None:
                progress.update(task, completed=dumped, written=human_bytes(written))

        try:
            path = asyncio.run(
                create_backup(
                    dsn,
                    settings.backup_dir,
                    free_bytes_override=settings.backup_free_bytes_override,
                    progress=show if progress is not None else None,
                )
            )
        except BackupError as error:
            fail(f"backup not created: {error}")
    written = BackupFile.parse(path)
    metadata = read_metadata(written) if written else None
    typer.echo(f"backup written: {path}")
    if metadata is not None:
        typer.echo(
            f"  {human_bytes(metadata.size_bytes)} gzipped from "
            f"{human_bytes(metadata.dump_bytes)} of SQL in "
            f"{time.monotonic() - started:.1f}s; migration head {metadata.migration_head}; "
            f"{sum(metadata.row_counts.values())} rows in {len(metadata.row_counts)} tables"
        )


def status_row(info: BackupInfo, now: datetime) -> list[str]:
    return [
        info.path.name,
        human_age(info.age(now)),
        human_bytes(info.size_bytes),
        info.checksum.value,
        "ok" if info.gzip_error is None else "CORRUPT",
        "yes" if info.metadata is not None else "no",
        "yes" if info.valid else "NO",
    ]


def verify_all(backup_dir: Path) -> list[BackupInfo]:
    """Every backup in `backup_dir` verified (a full read of each), newest first; a progress
    bar over their bytes on a terminal."""
    backups, signing_key = list_backups(backup_dir), configured_key()
    columns = (
        TextColumn("verifying {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
    )
    infos = []
    with progress_on_terminal(*columns) as progress:
        total = sum(backup.path.stat().st_size for backup in backups)
        task = progress.add_task("", total=total) if progress is not None else None
        for backup in backups:
            if progress is not None and task is not None:
                progress.update(task, description=backup.path.name)
            infos.append(verify_backup(backup, signing_key))
            if progress is not None and task is not None:
                progress.advance(task, infos[-1].size_bytes)
    return infos


@backup_app.command("status")
def status() -> None:
    """Verify each backup (checksum, full gzip test, metadata); exit 1 without a recent one."""
    settings = get_settings()
    now = datetime.now(UTC)
    infos = verify_all(settings.backup_dir)
    if not infos:
        fail(f"no backups in {settings.backup_dir}; run: vidgen backup create")
    headers = ["backup", "age", "size", "checksum", "gzip", "metadata", "valid"]
    typer.echo(render_table(headers, [status_row(info, now) for info in infos]))
    for info in infos:
        for problem in info.problems():
            typer.echo(f"{info.path.name}: {problem}")
    max_age = timedelta(hours=settings.backup_max_age_hours)
    newest = next((info for info in infos if info.valid), None)
    if newest is None:
        fail(f"no valid backup in {settings.backup_dir}; run: vidgen backup create")
    age, allowed = human_age(newest.age(now)), human_age(max_age)
    if newest.age(now) > max_age:
        fail(
            f"newest valid backup {newest.path.name} is {age} old, older than the {allowed} "
            "allowed (BACKUP_MAX_AGE_HOURS)"
        )
    typer.echo(f"newest valid backup: {newest.path.name}, {age} old (allowed: {allowed})")


def print_restore_plan(dsn: str, target: BackupFile) -> None:
    """What `restore --yes` would replace: the target, and its row counts against the backup's."""
    metadata = read_metadata(target)
    current = asyncio.run(current_row_counts(dsn))
    typer.echo(f"restoring {target.path} would REPLACE {describe_target(dsn)}")
    age = human_age(datetime.now(UTC) - target.created_at)
    typer.echo(f"backup taken {target.created_at:%Y-%m-%d %H:%M:%S} UTC ({age} ago)")
    if metadata is None:
        typer.echo("the backup has no readable metadata; its row counts are unknown")
    else:
        typer.echo(f"backup's migration head: {metadata.migration_head}")
    in_backup = metadata.row_counts if metadata else {}
    rows = [
        [table, str(current.get(table, "-")), str(in_backup.get(table, "-" if metadata else "?"))]
        for table in sorted(current.keys() | in_backup.keys())
    ]
    typer.echo(render_table(["table", "rows now", "rows in backup"], rows))
    if metadata and (kept := sorted(current.keys() - in_backup.keys())):
        typer.echo(f"not in the backup, left as they are: {', '.join(kept)}")


@backup_app.command("restore")
def restore(
    file: Annotated[Path, typer.Argument(help="a backup file, or its name inside BACKUP_DIR")],
    yes: Annotated[bool, typer.Option("--yes", help="really replace the database")] = False,
) -> None:
    """Replace the database with a backup, in one transaction, then audit the ledger."""
    settings = get_settings()
    dsn = database_url()
    try:
        target = resolve_backup_path(file, settings.backup_dir)
        if not yes:
            print_restore_plan(dsn, target)
            fail("nothing changed. Stop the API first, then re-run with --yes to restore.")
        ensure_reachable(dsn)  # before psql does, so it fails like every other command
        typer.echo(f"verifying {target.path.name} …")
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with progress_on_terminal(*columns) as progress:
            size = human_bytes(target.path.stat().st_size)
            if progress is not None:
                progress.add_task(f"verifying and restoring {target.path.name} ({size})")
            info = asyncio.run(restore_backup(dsn, target))
    except BackupError as error:
        fail(str(error))
    typer.echo(f"restored {info.path.name} into {describe_target(dsn)}")
    with progress_on_terminal(SpinnerColumn(), TextColumn("{task.description}")) as progress:
        if progress is not None:
            progress.add_task("auditing the ledger")
        report = asyncio.run(run_audit(dsn))
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)


@backup_app.command("prune")
def prune(
    keep: Annotated[int, typer.Option("--keep", min=1, help="how many of the newest to keep")],
) -> None:
    """Delete all but the N newest backups, with their checksum and metadata files."""
    backup_dir = get_settings().backup_dir
    removed = prune_backups(backup_dir, keep)
    for path in removed:
        typer.echo(f"removed {path}")
    kept = len(list_backups(backup_dir))
    typer.echo(f"{len(removed)} file(s) removed; {kept} backup(s) kept in {backup_dir}")
