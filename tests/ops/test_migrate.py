import asyncio
import hashlib
import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from app.core.config import PROJECT_ROOT
from app.ops import migrate, migrate_repository
from tests.support.helpers import run_vidgen

MIGRATIONS = PROJECT_ROOT / "migrations"
EXPECTED = [
    "20250520090000_init",
    "20250607162550_add_credit_idempotency_constraints",
    "20250626141646_add_video_generation",
]


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target)
    return target


async def fetch_col(url: str, sql: str, *args: object) -> list[object]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def test_deploy_on_empty_database_builds_the_designed_schema(empty_database_url: str) -> None:
    applied = await migrate.deploy(empty_database_url, MIGRATIONS)
    assert applied[:3] == EXPECTED

    tables = await fetch_col(
        empty_database_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    assert {"users", "models", "creditTransactions", "videos", "_prisma_migrations"} <= set(tables)

    user_columns = await fetch_col(
        empty_database_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'",
    )
    assert "purchasedCreditPacks" in user_columns
    assert "purchased_credit_packs" not in user_columns

    unique = await fetch_col(
        empty_database_url,
        """SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conname = 'creditTransactions_idempotencyKey_key' AND contype = 'u'""",
    )
    assert unique == ['UNIQUE ("idempotencyKey")']

    indexes = dict(
        zip(
            await fetch_col(empty_database_url, "SELECT indexname FROM pg_indexes ORDER BY 1"),
            await fetch_col(
                empty_database_url, "SELECT indexdef FROM pg_indexes ORDER BY indexname"
            ),
            strict=True,
        )
    )
    roll = indexes["creditTransactions_userId_period_roll_key"]
    assert roll.startswith("CREATE UNIQUE INDEX") and "WHERE (kind = 'roll'::text)" in roll
    assert '("userId", period)' in roll
    assert '("userId", "createdAt"' in indexes["videos_userId_createdAt_idx"]
    assert "(status)" in indexes["videos_status_idx"]
    assert "UNIQUE" in indexes["creditTransactions_videoId_kind_key"]

    fks = await fetch_col(
        empty_database_url,
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f'",
    )
    fk_text = "\n".join(map(str, fks))
    assert 'creditTransactions_userId_fkey FOREIGN KEY ("userId") REFERENCES users(id)' in fk_text
    assert (
        'creditTransactions_videoId_fkey FOREIGN KEY ("videoId") REFERENCES videos(id)' in fk_text
    )
    assert 'videos_userId_fkey FOREIGN KEY ("userId") REFERENCES users(id)' in fk_text
    assert 'videos_modelId_fkey FOREIGN KEY ("modelId") REFERENCES models(id)' in fk_text

    defaults = await fetch_col(
        empty_database_url,
        """SELECT column_default FROM information_schema.columns
           WHERE column_name = 'id' AND table_schema = 'public' AND is_identity = 'NO'
             AND table_name <> '_prisma_migrations'""",
    )
    assert defaults and all(d == "gen_random_uuid()" for d in defaults)

    history = await fetch_col(
        empty_database_url,
        """SELECT migration_name || ' ' || checksum FROM _prisma_migrations
           WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name""",
    )
    assert history[:3] == [
        f"{name} {hashlib.sha256((MIGRATIONS / name / 'migration.sql').read_bytes()).hexdigest()}"
        for name in EXPECTED
    ]


async def test_second_deploy_is_a_noop_and_status_says_up_to_date(empty_database_url: str) -> None:
    await migrate.deploy(empty_database_url, MIGRATIONS)
    assert await migrate.deploy(empty_database_url, MIGRATIONS) == []

    result = run_vidgen("migrate", "status", env={"DATABASE_URL": empty_database_url})
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    rows = await fetch_col(empty_database_url, "SELECT count(*) FROM _prisma_migrations")
    assert rows == [len(migrate.load_migrations(MIGRATIONS))]


async def test_status_on_a_fresh_database_lists_pending_and_exits_nonzero(
    empty_database_url: str,
) -> None:
    result = run_vidgen("migrate", "status", env={"DATABASE_URL": empty_database_url})
    assert result.returncode == 1
    assert f"pending   {EXPECTED[0]}" in result.stdout
    assert "NOT up to date" in result.stderr


async def test_concurrent_deploys_apply_each_migration_exactly_once(
    empty_database_url: str,
) -> None:
    results = await asyncio.gather(
        *(migrate.deploy(empty_database_url, MIGRATIONS) for _ in range(4))
    )
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(f.name for f in migrate.load_migrations(MIGRATIONS))
    assert sum(1 for r in results if r) == 1  # the others waited, then found nothing to do
    names = await fetch_col(empty_database_url, "SELECT migration_name FROM _prisma_migrations")
    assert len(names) == len(set(names))


async def test_an_edited_applied_migration_is_refused_by_name(
    empty_database_url: str, migrations_copy: Path
) -> None:
    await migrate.deploy(empty_database_url, migrations_copy)
    edited = migrations_copy / EXPECTED[1] / "migration.sql"
    edited.write_text(edited.read_text() + "\n-- a harmless-looking edit\n")

    with pytest.raises(migrate.MigrationError, match=EXPECTED[1]):
        await migrate.deploy(empty_database_url, migrations_copy)

    env = {"DATABASE_URL": empty_database_url, "MIGRATIONS_DIR": str(migrations_copy)}
    result = run_vidgen("migrate", "status", env=env)
    assert result.returncode == 1
    assert f"MODIFIED  {EXPECTED[1]}" in result.stdout
    result = run_vidgen("migrate", "deploy", env=env)
    assert result.returncode == 1
    assert EXPECTED[1] in result.stderr


async def test_a_database_migrated_by_prisma_is_taken_over_without_reapplying(
    empty_database_url: str,
) -> None:
    # Exactly what `prisma migrate deploy` leaves behind: its DDL, its rows, sha256 checksums.
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate_repository.CREATE_HISTORY_TABLE.execute(conn)
        for migration in migrate.load_migrations(MIGRATIONS):
            await conn.execute(migration.sql)
            await conn.execute(
                """INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name,
                   logs, rolled_back_at, started_at, applied_steps_count)
                   VALUES ($1, $2, now(), $3, NULL, NULL, now(), 1)""",
                str(uuid.uuid4()),
                migration.checksum,
                migration.name,
            )
    finally:
        await conn.close()

    assert await migrate.deploy(empty_database_url, MIGRATIONS) == []
    status = await migrate.read_status(empty_database_url, MIGRATIONS)
    assert status.up_to_date and len(status.applied) == len(migrate.load_migrations(MIGRATIONS))


async def test_a_failed_migration_blocks_deploys_until_resolved(
    empty_database_url: str, migrations_copy: Path
) -> None:
    await migrate.deploy(empty_database_url, migrations_copy)
    broken = migrations_copy / "29990101000000_broken"
    broken.mkdir()
    (broken / "migration.sql").write_text(
        'ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\nALTER TABLE "nope" ADD COLUMN "x" INT;\n'
    )

    with pytest.raises(migrate.MigrationError, match="29990101000000_broken"):
        await migrate.deploy(empty_database_url, migrations_copy)
    # Its transaction rolled back: the first statement left nothing behind.
    columns = await fetch_col(
        empty_database_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'",
    )
    assert "nickname" not in columns
    logs = await fetch_col(
        empty_database_url,
        "SELECT logs FROM _prisma_migrations WHERE migration_name = $1 AND finished_at IS NULL",
        broken.name,
    )
    assert len(logs) == 1 and 'relation "nope" does not exist' in str(logs[0])

    (broken / "migration.sql").write_text('ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n')
    with pytest.raises(migrate.MigrationError, match="P3009"):
        await migrate.deploy(empty_database_url, migrations_copy)

    env = {"DATABASE_URL": empty_database_url, "MIGRATIONS_DIR": str(migrations_copy)}
    result = run_vidgen("migrate", "resolve", "--rolled-back", broken.name, env=env)
    assert result.returncode == 0, result.stderr
    assert await migrate.deploy(empty_database_url, migrations_copy) == [broken.name]
    assert (await migrate.read_status(empty_database_url, migrations_copy)).up_to_date


async def test_deploy_onto_data_wants_a_recent_backup_and_analyzes_new_tables(
    empty_database_url: str, migrations_copy: Path, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": empty_database_url,
        "MIGRATIONS_DIR": str(migrations_copy),
        "BACKUP_DIR": str(tmp_path / "backups"),
    }
    first = run_vidgen("migrate", "deploy", env=env)  # empty database: no backup needed
    assert first.returncode == 0, first.stderr
    assert "VACUUM ANALYZE users, models, creditTransactions" in first.stdout
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute("INSERT INTO users (email) VALUES ('someone@example.com')")
        analyzed = await conn.fetchval(
            "SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL "
            "FROM pg_stat_user_tables WHERE relname = 'videos'"
        )
    finally:
        await conn.close()
    assert analyzed

    extra = migrations_copy / "29990101000000_add_nickname"
    extra.mkdir()
    (extra / "migration.sql").write_text('ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n')
    refused = run_vidgen("migrate", "deploy", env=env)
    assert refused.returncode == 1
    assert "vidgen backup create" in refused.stderr
    assert (await migrate.read_status(empty_database_url, migrations_copy)).pending == [extra.name]

    backed_up = run_vidgen("backup", "create", env=env)
    assert backed_up.returncode == 0, backed_up.stderr
    deployed = run_vidgen("migrate", "deploy", env=env)
    assert deployed.returncode == 0, deployed.stderr
    assert f"applied  {extra.name}" in deployed.stdout
