"""`vidgen smoke` against a running server on the simulator: passes, repeats, and fails
clearly once the database is gone."""

import tempfile
from pathlib import Path

from app.catalog import service as catalog
from app.core.db import create_engine, create_sessionmaker, unit_of_work
from app.fal.simulator.process import SimulatorProcess
from app.ops import migrate
from app.ops.localpg import LocalPostgres, free_port
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.fal.apps import AppProcess
from tests.helpers import run_vidgen


async def test_smoke_passes_repeatedly_then_names_the_database_when_it_is_down(
    simulator: SimulatorProcess, tmp_path: Path
) -> None:
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="vidgen-smoke-pg-")), free_port(), True)
    server.start()
    app: AppProcess | None = None
    try:
        settings = make_settings(server.url)
        await migrate.deploy(server.url, settings.migrations_dir)
        engine = create_engine(settings)
        async with unit_of_work(create_sessionmaker(engine)) as session:
            await catalog.sync(session, catalog.load_catalog())
        await engine.dispose()
        app = AppProcess(server.url, simulator, tmp_path).start()
        smoke = ["smoke", "--base-url", app.url, "--admin-token", ADMIN_TOKEN]

        for _ in range(2):  # safe to run repeatedly
            passed = run_vidgen(*smoke)
            assert passed.returncode == 0, passed.stdout + passed.stderr
            for check in ("database and models", "credit transaction", "video job end to end"):
                assert f"{check}" in passed.stdout
            assert passed.stdout.count("PASS") == 4 and "smoke passed" in passed.stdout

        server.stop()
        failed = run_vidgen(*smoke, "--skip-video")
        assert failed.returncode == 1
        first = next(ln for ln in failed.stdout.splitlines() if ln.startswith("database"))
        assert "FAIL" in first and "503" in first
        assert "smoke FAILED: database and models" in failed.stderr
    finally:
        if app is not None:
            app.stop()
        server.destroy()
