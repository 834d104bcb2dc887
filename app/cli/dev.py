"""`vidgen dev`: run locally, with our own PostgreSQL and Fal simulator when none is configured."""

import asyncio
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import typer
import uvicorn
from pydantic import ValidationError

from app.cli.console import fail
from app.cli.database import one_transaction
from app.cli.env_file import ENV_FILE, record_database_url, recorded_by_dev
from app.cli.migrate import migrate_deploy
from app.cli.models import models_sync
from app.cli.simulator import DEV_SIMULATOR_DIR
from app.core.config import PROJECT_ROOT, AppEnv, get_settings, to_asyncpg_url
from app.credits.schemas import CreditGrant
from app.credits.service import DuplicateMovement, grant
from app.fal.simulator.process import SimulatorProcess
from app.ops.localpg import (
    LocalPostgres,
    LocalPostgresError,
    ensure_database,
    free_port,
    port_is_free,
)
from app.users.service import create_user, find_by_email, rotate_api_key

DEV_DATA_DIR = PROJECT_ROOT / ".data" / "postgres"
DEV_PG_PORT = 54329
DEV_DATABASE = "vidgen"
DEMO_EMAIL = "demo@example.com"
DEMO_CREDITS = 10_000


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


def uses_own_postgres(configured: str | None) -> bool:
    """No DATABASE_URL, or only the one an earlier `vidgen dev` wrote into .env (its own
    server's, stopped since): start our PostgreSQL. A user's own, from the environment or
    their .env line, is used as it is."""
    if not configured:
        return True
    recorded = recorded_by_dev(ENV_FILE)
    from_env_file = not os.environ.get("DATABASE_URL")
    return from_env_file and recorded is not None and to_asyncpg_url(recorded) == configured


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
    typer.echo(f"playground: {base}/playground#token={api_key}")  # a fragment: never logged
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


def dev(port: int = 8000, host: str = "127.0.0.1") -> None:
    """Run locally: own PostgreSQL and Fal simulator when not configured, demo user, serve."""
    server: LocalPostgres | None = None
    simulator: SimulatorProcess | None = None
    try:
        settings = get_settings()
        if not settings.fal_key and settings.app_env is AppEnv.PRODUCTION:
            fail("APP_ENV=production needs FAL_KEY: the simulator is for development only.")
        if uses_own_postgres(settings.database_url):
            server, url = start_dev_postgres()
            os.environ["DATABASE_URL"] = url
            get_settings.cache_clear()
            typer.echo(f"DATABASE_URL={url}")
            typer.echo(record_database_url(url))
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
