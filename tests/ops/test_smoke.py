"""`vidgen smoke` against a running server on the simulator: passes, repeats, and fails
clearly once the database is gone."""

import tempfile
from pathlib import Path

from app.fal.simulator.process import SimulatorProcess
from app.ops.localpg import LocalPostgres, free_port
from tests.support.apps import ADMIN_TOKEN, AppProcess
from tests.support.database import migrate_and_load_catalog
from tests.support.helpers import run_vidgen


async def test_smoke_passes_repeatedly_then_names_the_database_when_it_is_down(
    simulator: SimulatorProcess, tmp_path: Path
) -> None:
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="vidgen-smoke-pg-")), free_port(), True)
    server.start()
    app: AppProcess | None = None
    try:
        await migrate_and_load_catalog(server.url)
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
