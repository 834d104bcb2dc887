"""Small helpers shared by tests: running the real `vidgen` console script, and where the
fal-client driver script is (run as a child: see its docstring)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.fal.simulator.process import SimulatorProcess

VIDGEN = str(Path(sys.executable).parent / "vidgen")
FAL_DRIVER = Path(__file__).with_name("fal_driver.py")


def run_vidgen(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "APP_ENV": "test", **(env or {})}
    return subprocess.run(
        [VIDGEN, *args], env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def libpq(url: str) -> str:
    """A database URL in the plain form asyncpg.connect accepts."""
    return "postgresql://" + url.split("://", 1)[1]


def run_fal(sim: SimulatorProcess, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run `steps` through the real fal-client in a child process pointed at `sim`."""
    proc = subprocess.run(
        [sys.executable, str(FAL_DRIVER)],
        input=json.dumps(steps),
        env={**os.environ, **sim.client_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return results
