import asyncio
import gzip
import hashlib
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.core.config import PROJECT_ROOT
from app.ops import migrate
from app.ops.backup.create import create_backup
from app.ops.backup.units import human_bytes
from app.ops.backup.verify import latest_valid_backup
from tests.support.backups import files_in, fingerprints
from tests.support.factories import create_user, grant
from tests.support.helpers import libpq, run_vidgen

SIDECAR_SUFFIXES = ("", ".sha256", ".json")


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture
def env(database_url: str, backup_dir: Path) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "BACKUP_DIR": str(backup_dir)}


async def make_backup(database_url: str, backup_dir: Path) -> Path:
    return await create_backup(libpq(database_url), backup_dir)


def copy_backup(dump: Path, name: str) -> Path:
    """The same backup under another name (another timestamp), with its sidecars."""
    copy = dump.with_name(name)
    for suffix in SIDECAR_SUFFIXES:
        shutil.copyfile(dump.with_name(dump.name + suffix), copy.with_name(name + suffix))
    return copy


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_restore_brings_back_exactly_what_was_backed_up(
    client: httpx.AsyncClient, database_url: str, backup_dir: Path, env: dict[str, str]
) -> None:
    user = await create_user(client, credits=100)
    await grant(client, user, 30, kind="purchase", reason="pack:pro")
    backed_up = await fingerprints(database_url)

    created = run_vidgen("backup", "create", env=env)
    assert created.returncode == 0, created.stderr
    (dump,) = (backup_dir / name for name in files_in(backup_dir) if name.endswith(".gz"))
    assert f"backup written: {dump}" in created.stdout
    checksum = dump.with_name(dump.name + ".sha256").read_text()
    assert checksum == f"{hashlib.sha256(dump.read_bytes()).hexdigest()}  {dump.name}\n"
    metadata = json.loads(dump.with_name(dump.name + ".json").read_text())
    assert metadata["row_counts"] == {table: count for table, (count, _) in backed_up.items()}
    newest = migrate.load_migrations(PROJECT_ROOT / "migrations")[-1].name
    assert metadata["migration_head"] == newest
    assert metadata["pg_dump_version"] and metadata["server_version"]

    later = await create_user(client, credits=5)
    await grant(client, user, 7)  # also changes a backed-up row: the user's balance
    assert await fingerprints(database_url) != backed_up

    restored = run_vidgen("backup", "restore", str(dump), "--yes", env=env)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "audit clean" in restored.stdout  # `vidgen audit`'s report, run after restoring
    assert await fingerprints(database_url) == backed_up
    conn = await asyncpg.connect(libpq(database_url))
    try:
        assert not await conn.fetchval('SELECT 1 FROM "users" WHERE "id" = $1', later.id)
    finally:
        await conn.close()
    # The running API carries on over the recreated tables, the ledger's identity included.
    assert (await grant(client, user, 1)).json()["balance_after"] == 131


async def test_a_corrupted_backup_is_refused_by_status_and_restore(
    client: httpx.AsyncClient, database_url: str, backup_dir: Path, env: dict[str, str]
) -> None:
    dump = await make_backup(database_url, backup_dir)
    flip_middle_byte(dump)
    await create_user(client, credits=3)  # so a restore, had it run, would show
    before = await fingerprints(database_url)

    # Two independent refusals: run them side by side, the suite pays for CLI start-up.
    status, restore = await asyncio.gather(
        asyncio.to_thread(run_vidgen, "backup", "status", env=env),
        asyncio.to_thread(run_vidgen, "backup", "restore", str(dump), "--yes", env=env),
    )
    assert status.returncode != 0
    assert f"{dump.name}: checksum mismatch" in status.stdout
    assert "no valid backup" in status.stderr
    assert restore.returncode == 1
    assert "refusing to restore" in restore.stderr and "checksum mismatch" in restore.stderr
    assert await fingerprints(database_url) == before


async def test_a_restore_failing_midway_leaves_the_database_unchanged(
    client: httpx.AsyncClient, database_url: str, backup_dir: Path, env: dict[str, str]
) -> None:
    dump = await make_backup(database_url, backup_dir)
    # A well-formed, correctly checksummed backup whose SQL fails after dropping and
    # recreating every table: only the all-or-nothing transaction saves the data.
    failing = dump.with_name("backup_20200101_000000.sql.gz")
    failing.write_bytes(gzip.compress(gzip.decompress(dump.read_bytes()) + b"SELECT 1/0;\n"))
    digest = hashlib.sha256(failing.read_bytes()).hexdigest()
    failing.with_name(failing.name + ".sha256").write_text(f"{digest}  {failing.name}\n")
    await create_user(client, credits=3)
    before = await fingerprints(database_url)

    restore = run_vidgen("backup", "restore", failing.name, "--yes", env=env)
    assert restore.returncode == 1
    assert "division by zero" in restore.stderr and "rolled back" in restore.stderr
    assert await fingerprints(database_url) == before


async def test_create_refuses_without_twice_the_database_size_free(
    database_url: str, backup_dir: Path, env: dict[str, str]
) -> None:
    conn = await asyncpg.connect(libpq(database_url))
    try:
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()

    refused = run_vidgen("backup", "create", env={**env, "BACKUP_FREE_BYTES_OVERRIDE": "1000"})
    assert refused.returncode == 1
    assert "not enough free space" in refused.stderr
    assert "1000 B free" in refused.stderr
    assert human_bytes(2 * size) in refused.stderr and human_bytes(size) in refused.stderr
    assert files_in(backup_dir) == []


async def test_create_refuses_a_pg_dump_older_than_the_server(
    database_url: str, backup_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    old_client = tmp_path / "old-client"
    old_client.mkdir()
    (old_client / "pg_dump").write_text('#!/bin/sh\necho "pg_dump (PostgreSQL) 11.22"\n')
    (old_client / "pg_dump").chmod(0o755)

    refused = run_vidgen("backup", "create", env={**env, "PG_BIN_DIR": str(old_client)})
    assert refused.returncode == 1
    assert "version 11.22, older than the server (PostgreSQL 1" in refused.stderr
    assert "apt-get install postgresql-client-1" in refused.stderr
    assert files_in(backup_dir) == []


async def test_restore_without_yes_shows_what_would_be_replaced_and_changes_nothing(
    client: httpx.AsyncClient, database_url: str, backup_dir: Path, env: dict[str, str]
) -> None:
    await create_user(client, credits=10)
    dump = await make_backup(database_url, backup_dir)
    await create_user(client)
    before = await fingerprints(database_url)

    dry_run = run_vidgen("backup", "restore", dump.name, env=env)
    assert dry_run.returncode == 1
    assert "would REPLACE database" in dry_run.stdout
    assert re.search(r"^users +2 +1$", dry_run.stdout, re.MULTILINE)  # rows now, in backup
    assert "re-run with --yes" in dry_run.stderr
    assert await fingerprints(database_url) == before


async def test_prune_keeps_the_newest_backups_and_their_sidecars(
    database_url: str, backup_dir: Path, env: dict[str, str]
) -> None:
    dump = await make_backup(database_url, backup_dir)
    older = [copy_backup(dump, f"backup_2024010{day}_120000.sql.gz") for day in (1, 2, 3)]

    pruned = run_vidgen("backup", "prune", "--keep", "2", env=env)
    assert pruned.returncode == 0, pruned.stderr
    expected = [older[2].name, dump.name]
    assert files_in(backup_dir) == sorted(
        name + suffix for name in expected for suffix in SIDECAR_SUFFIXES
    )
    assert "6 file(s) removed; 2 backup(s) kept" in pruned.stdout
    assert f"removed {older[0]}.sha256" in pruned.stdout


async def test_status_needs_a_valid_recent_backup(
    database_url: str, backup_dir: Path, env: dict[str, str]
) -> None:
    empty = run_vidgen("backup", "status", env=env)
    assert empty.returncode != 0 and "no backups" in empty.stderr

    dump = await make_backup(database_url, backup_dir)
    stale = copy_backup(dump, "backup_20240101_120000.sql.gz")
    dump.unlink()
    only_stale = run_vidgen("backup", "status", env=env)
    assert only_stale.returncode != 0
    assert f"newest valid backup {stale.name} is" in only_stale.stderr
    assert "older than the 1d 00h allowed" in only_stale.stderr

    fresh = await make_backup(database_url, backup_dir)
    recent = run_vidgen("backup", "status", env=env)
    assert recent.returncode == 0, recent.stderr
    assert recent.stdout.splitlines()[2].startswith(f"{fresh.name}  ")  # newest first
    assert f"newest valid backup: {fresh.name}" in recent.stdout


async def test_latest_valid_backup_skips_corrupt_and_old_ones(
    database_url: str, backup_dir: Path
) -> None:
    assert latest_valid_backup(backup_dir, timedelta(hours=1)) is None
    good = await make_backup(database_url, backup_dir)
    newer = await make_backup(database_url, backup_dir)  # named to sort after `good`
    flip_middle_byte(newer)

    found = latest_valid_backup(backup_dir, timedelta(hours=1))
    assert found is not None and found.path == good
    assert found.metadata is not None and found.metadata.row_counts["_prisma_migrations"] > 0
    assert latest_valid_backup(backup_dir, timedelta(seconds=0)) is None
