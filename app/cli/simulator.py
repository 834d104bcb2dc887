"""`vidgen fal-simulator`: the Fal simulator on its own, for development and tests."""

from pathlib import Path
from typing import Annotated

import typer

from app.cli.console import fail
from app.core.config import PROJECT_ROOT, AppEnv, get_settings
from app.fal.simulator.__main__ import print_banner
from app.fal.simulator.process import DEFAULT_PORT, run_simulator

# `vidgen dev` keeps its simulator's state here too.
DEV_SIMULATOR_DIR = PROJECT_ROOT / ".data" / "fal-simulator"


def fal_simulator(
    port: int = DEFAULT_PORT,
    state_dir: Annotated[Path, typer.Option(help="CA, keys and logs")] = DEV_SIMULATOR_DIR,
) -> None:
    """The Fal simulator on its own (HTTPS on 127.0.0.1; knobs: FAL_SIMULATOR_* variables)."""
    if get_settings().app_env is AppEnv.PRODUCTION:
        fail("refusing to run the Fal simulator with APP_ENV=production")
    run_simulator(port=port, state_dir=state_dir, on_ready=print_banner)
