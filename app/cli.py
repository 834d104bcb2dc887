"""`vidgen`: the one entry point for running and operating the service (DESIGN §9)."""

import asyncio
import contextlib
import hashlib
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
import uvicorn
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import service as catalog
from app.catalog.models import CatalogModel
from app.core.config import PROJECT_ROOT, AppEnv, get_settings, to_libpq_url
from app.core.db import create_engine, create_sessionmaker, unit_of_work
from app.core.errors import AppError
from app.credits.models import CreditKind
from app.credits.schemas import CreditGrant, CreditTransactionPublic
from app.credits.service import DuplicateMovement, grant
from app.fal.simulator.__main__ import print_banner
from app.fal.simulator.process import DEFAULT_PORT, SimulatorProcess, run_simulator
from app.ops import migrate
from app.ops.audit import run_audit
from app.ops.backup import latest_valid_backup
from app.ops.backup_cli import backup_app
from app.ops.console import fail
from app.ops.localpg import LocalPostgres, LocalPostgresError, free_port, port_is_free
from app.ops.maintenance import set_maintenance
from app.ops.smoke import SmokeSuite
from app.ops.smoke import render as render_smoke
from app.users.service import create_user, find_by_email, find_user, rotate_api_key
from app.videos import repository as videos_repository
from app.videos.models import VideoStatus

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
migrate_app = typer.Typer(no_args_is_help=True, help="Forward-only SQL migrations (Prisma layout).")
app.add_typer(migrate_app, name="migrate")
app.add_typer(backup_app, name="backup")

DEV_DATA_DIR = PROJECT_ROOT / ".data" / "postgres"
DEV_PG_PORT = 54329
DEV_DATABASE = "vidgen"
DEV_SIMULATOR_DIR = PROJECT_ROOT / ".data" / "fal-simulator"
DEMO_EMAIL = "demo@example.com"
DEMO_CREDITS = 10_000


@asynccontextmanager
async def one_transaction() -> AsyncIterator[AsyncSession]:
    """A command's unit of work, on an engine of its own that is closed afterwards."""
    engine = create_engine(get_settings())
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            yield session
    finally:
        await engine.dispose()


def database_url() -> str:
    url = get_settings().database_url
    if not url:
        fail("DATABASE_URL is not set. Set it, or use `vidgen dev` for a local database.")
    return to_libpq_url(url)


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


credits_app = typer.Typer(no_args_is_help=True, help="Move a user's credits (the ledger).")
app.add_typer(credits_app, name="credits")


async def _add_credits(user: str, amount: int, kind: CreditKind, reason: str | None,
                       period: str | None, key: str) -> CreditTransactionPublic:  # fmt: skip
    async with one_transaction() as session:
        target = await find_user(session, user)
        request = CreditGrant(
            user_id=target.id, amount=amount, kind=kind, reason=reason, period=period
        )
        return CreditTransactionPublic.of(await grant(session, request, f"cli:{key}"))


@credits_app.command("add")
def credits_add(
    user: Annotated[str, typer.Option(help="the user's email or id")],
    amount: Annotated[int, typer.Option(help="credits; negative only with --kind adjustment")],
    kind: Annotated[CreditKind, typer.Option()] = CreditKind.GRANT,
    reason: Annotated[str | None, typer.Option()] = None,
    period: Annotated[str | None, typer.Option(help="required with --kind roll")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="repeat a key to make a retry safe (default: new key)")
    ] = None,
) -> None:
    """Add credits to a user (the seed's add-credits script), as one ledger transaction."""
    database_url()
    if kind in (CreditKind.DEBIT, CreditKind.REFUND):
        fail("debits and refunds belong to video jobs; use --kind adjustment")
    try:
        row = asyncio.run(
            _add_credits(user, amount, kind, reason, period, idempotency_key or str(uuid.uuid4()))
        )
    except AppError as error:
        fail(f"{error.code}: {error.detail}")
    except ValidationError as error:
        fail("; ".join(str(e["msg"]) for e in error.errors()))
    typer.echo(row.model_dump_json(indent=2))


models_app = typer.Typer(no_args_is_help=True, help="The video-model catalog.")
app.add_typer(models_app, name="models")


async def _sync_models() -> catalog.SyncResult:
    async with one_transaction() as session:
        return await catalog.sync(session, catalog.load_catalog())


@models_app.command("sync")
def models_sync() -> None:
    """Upsert app/catalog/catalog.json into `models`; deactivate models it no longer lists."""
    database_url()
    result = asyncio.run(_sync_models())
    typer.echo(f"catalog v{catalog.load_catalog().version}: {len(result.upserted)} models active")
    for slug in result.deactivated:
        typer.echo(f"deactivated {slug}")


async def _models_status() -> tuple[list[CatalogModel], dict[str, dict[str, int]]]:
    async with one_transaction() as session:
        models = await catalog.list_all(session)
        return models, await videos_repository.count_by_model_and_status(session)


@models_app.command("status")
def models_status() -> None:
    """Each model's state, price and jobs per status."""
    database_url()
    models, counts = asyncio.run(_models_status())
    statuses = [s.value for s in VideoStatus]
    typer.echo(
        f"{'model':<28} {'state':<9} {'credits/s':>9} " + " ".join(f"{s:>10}" for s in statuses)
    )
    for model in models:
        jobs = counts.get(model.slug, {})
        state = "active" if model.active else "inactive"
        typer.echo(
            f"{model.slug:<28} {state:<9} {model.credits_per_second:>9} "
            + " ".join(f"{jobs.get(s, 0):>10}" for s in statuses)
        )


class Switch(StrEnum):
    ON = "on"
    OFF = "off"


async def _set_maintenance(enabled: bool, reason: str | None) -> None:
    async with one_transaction() as session:
        await set_maintenance(session, enabled, reason)


@app.command()
def maintenance(
    state: Switch, reason: Annotated[str | None, typer.Option(help="shown to operators")] = None
) -> None:
    """Pause writes on every replica (503 + Retry-After) or resume them; reads keep working."""
    database_url()
    asyncio.run(_set_maintenance(state is Switch.ON, reason))
    refresh = get_settings().maintenance_refresh_s
    typer.echo(f"maintenance {state.value}: every replica follows within {refresh:g}s")


@app.command()
def smoke(
    base_url: Annotated[str, typer.Option(help="e.g. https://staging.example.com")],
    admin_token: Annotated[
        str | None, typer.Option(help="default: ADMIN_TOKEN from the environment")
    ] = None,
    skip_video: bool = False,
    video_timeout: float = 180.0,
) -> None:
    """The staging smoke suite: exit 0 only if every check passes."""
    suite = SmokeSuite(
        base_url.rstrip("/"),
        admin_token or get_settings().admin_token,
        skip_video=skip_video,
        video_timeout_s=video_timeout,
    )
    results = asyncio.run(suite.run())
    typer.echo(render_smoke(results))
    failed = [r.name for r in results if not r.passed]
    if failed:
        fail(f"smoke FAILED: {', '.join(failed)}")
    typer.echo("smoke passed")


@app.command()
def audit() -> None:
    """Check the ledger invariants; exit 1 and list the offending rows when one breaks."""
    report = asyncio.run(run_audit(database_url()))
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def serve(
    host: str = "0.0.0.0",
    port: int = 8000,
    workers: int = 1,
) -> None:
    """Production server (uvicorn)."""
    # access_log off: the app writes its own JSON access line (app/core/middleware.py).
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
    )


async def ensure_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def start_dev_postgres() -> tuple[LocalPostgres, str]:
    # The usual port, unless something else (another checkout's dev server) holds it.
    server = LocalPostgres(DEV_DATA_DIR, DEV_PG_PORT if port_is_free(DEV_PG_PORT) else free_port())
    if not (server.data_dir.exists() or server.can_use(server.data_dir.parent)):
        # As root the server runs as `postgres`, which may not reach a checkout in a private
        # directory; keep the data in a per-checkout directory it can reach instead.
        digest = hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:12]
        server.data_dir = Path(tempfile.gettempdir()) / f"vidgen-dev-{digest}" / "postgres"
        typer.echo(f"note: {DEV_DATA_DIR.parent} is not reachable by user `{server.run_as}`")
    typer.echo(f"starting local PostgreSQL in {server.data_dir} on 127.0.0.1:{server.port}")
    server.start()
    asyncio.run(ensure_database(server.url, DEV_DATABASE))
    return server, server.url_for(DEV_DATABASE)


def start_dev_simulator() -> SimulatorProcess:
    """The Fal simulator for `vidgen dev` without FAL_KEY; this process then talks to it."""
    simulator = SimulatorProcess(DEV_SIMULATOR_DIR).start()
    os.environ.update(simulator.client_env())
    os.environ["FAL_JWKS_URL"] = simulator.jwks_url
    os.environ["FAL_STORAGE_URL"] = simulator.base_url
    get_settings.cache_clear()
    typer.echo(f"Fal simulator on {simulator.base_url} (no FAL_KEY set)")
    return simulator


async def _demo_user(credits: int) -> str:
    """The demo user, with a fresh API key (keys are stored hashed, so old ones can't be shown)."""
    async with one_transaction() as session:
        user = await find_by_email(session, DEMO_EMAIL)
        if user is None:
            user, _ = await create_user(session, DEMO_EMAIL)
        api_key = await rotate_api_key(session, user)
        request = CreditGrant(user_id=user.id, amount=credits, kind="grant", reason="demo")
        with contextlib.suppress(DuplicateMovement):
            async with session.begin_nested():
                await grant(session, request, "demo:initial-credits")
        return api_key


def print_demo_instructions(api_key: str, port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    typer.secho(f"\ndemo user {DEMO_EMAIL}, API key: {api_key}", bold=True)
    typer.echo(
        f"curl -s -X POST {base}/api/videos/quote -H 'Authorization: Bearer {api_key}' "
        "-H 'Content-Type: application/json' "
        '-d \'{"model":"veo3-t2v","prompt":"a cat surfing at sunset","generate_audio":true}\''
    )
    typer.echo(
        f"curl -s -X POST {base}/api/videos -H 'Authorization: Bearer {api_key}' "
        "-H 'Content-Type: application/json' -H \"Idempotency-Key: $(date +%s%N)\" "
        '-d \'{"model":"kling-v2-master-t2v","prompt":"a cat surfing at sunset"}\''
    )
    typer.echo(f"curl -s {base}/api/videos -H 'Authorization: Bearer {api_key}'\n")


@app.command()
def dev(port: int = 8000, host: str = "127.0.0.1") -> None:
    """Run locally: own PostgreSQL and Fal simulator when not configured, demo user, serve."""
    server: LocalPostgres | None = None
    simulator: SimulatorProcess | None = None
    try:
        settings = get_settings()
        if not settings.fal_key and settings.app_env is AppEnv.PRODUCTION:
            fail("APP_ENV=production needs FAL_KEY: the simulator is for development only.")
        if not settings.database_url:
            server, url = start_dev_postgres()
            os.environ["DATABASE_URL"] = url
            get_settings.cache_clear()
        migrate_deploy(skip_backup_check=True)  # its own local database
        models_sync()
        if not settings.fal_key:
            simulator = start_dev_simulator()
        os.environ.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
        get_settings.cache_clear()
        print_demo_instructions(asyncio.run(_demo_user(DEMO_CREDITS)), port)
        uvicorn.run("app.main:create_app", factory=True, host=host, port=port, access_log=False)
    except (LocalPostgresError, ValidationError) as error:
        fail(str(error))
    finally:
        if simulator is not None:
            simulator.stop()
        if server is not None:
            typer.echo("stopping local PostgreSQL")
            server.stop()


@app.command("fal-simulator")
def fal_simulator(
    port: int = DEFAULT_PORT,
    state_dir: Annotated[Path, typer.Option(help="CA, keys and logs")] = DEV_SIMULATOR_DIR,
) -> None:
    """The Fal simulator on its own (HTTPS on 127.0.0.1; knobs: FAL_SIMULATOR_* variables)."""
    if get_settings().app_env is AppEnv.PRODUCTION:
        fail("refusing to run the Fal simulator with APP_ENV=production")
    run_simulator(port=port, state_dir=state_dir, on_ready=print_banner)


def main() -> None:
    app(prog_name=Path(sys.argv[0]).name if sys.argv else "vidgen")
