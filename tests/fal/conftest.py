import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.fal.simulator.process import SimulatorProcess
from tests.fal.apps import AppProcess

SIMULATOR_DELAY_S = 0.6


@pytest.fixture(scope="session")
def simulator_session() -> Iterator[SimulatorProcess]:
    state = Path(tempfile.mkdtemp(prefix="vidgen-fal-sim-"))
    with SimulatorProcess(state, knobs={"delay_s": SIMULATOR_DELAY_S, "seed": 7}) as sim:
        yield sim


@pytest.fixture
def simulator(simulator_session: SimulatorProcess) -> SimulatorProcess:
    """The shared simulator, with its records and knobs reset for this test."""
    simulator_session.reset()
    return simulator_session


@pytest.fixture
async def fal_app(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path
) -> AsyncIterator[tuple[AppProcess, httpx.AsyncClient]]:
    app = AppProcess(database_url, simulator, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            yield app, client
    finally:
        app.stop()
