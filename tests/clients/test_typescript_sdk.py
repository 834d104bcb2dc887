"""The TypeScript SDK (clients/typescript) against the real service: `vidgen serve` with the
Fal simulator, a user with credits, then node's test runner on the SDK's compiled tests.

Streams end after one second here (STREAM_MAX_LIFETIME_S) while a job takes several, so
following a video to `completed` has to resume with Last-Event-ID, as it must in production
after STREAM_MAX_LIFETIME_S.
"""

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.config import PROJECT_ROOT
from app.fal.simulator.process import SimulatorProcess
from tests.support.apps import AppProcess
from tests.support.factories import create_user

SDK = PROJECT_ROOT / "clients" / "typescript"
NODE_TIMEOUT_S = 120


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is not installed: the TypeScript SDK's tests need Node.js >= 20 and npm "
            "(e.g. apt-get install nodejs npm)",
            pytrace=False,
        )
    return path


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture
def compiled_sdk() -> Iterator[Path]:
    """The SDK and its tests compiled to JavaScript, in a directory of this run's own (beside
    node_modules, which node finds by walking up)."""
    require("node")
    require("npm")
    run([str(PROJECT_ROOT / "scripts" / "generate-sdk"), "--install"])
    out = SDK / "build" / f"pytest-{uuid.uuid4().hex[:8]}"
    try:
        run([str(SDK / "node_modules" / ".bin" / "tsc"), "-p", str(SDK), "--outDir", str(out)])
        yield out
    finally:
        shutil.rmtree(out, ignore_errors=True)


async def test_the_sdk_against_a_live_server(
    compiled_sdk: Path, database_url: str, simulator: SimulatorProcess, tmp_path: Path
) -> None:
    simulator.configure(delay_s=3.0)  # a job outlives several streams
    app = AppProcess(
        database_url,
        simulator,
        tmp_path,
        STREAM_MAX_LIFETIME_S="1",
        EVENTS_POLL_INTERVAL_S="0.1",
    ).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=10_000)
        tests = sorted((compiled_sdk / "test").glob("*.test.js"))
        assert len(tests) >= 2, tests
        node = await asyncio.create_subprocess_exec(
            require("node"),
            "--test",
            *map(str, tests),
            cwd=SDK,
            env={
                **os.environ,
                "VIDGEN_BASE_URL": app.url,
                "VIDGEN_TOKEN": user.api_key,
                "VIDGEN_EXPECT_RESUME": "1",
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(node.communicate(), timeout=NODE_TIMEOUT_S)
        except TimeoutError:
            node.kill()
            output, _ = await node.communicate()
            pytest.fail(f"node --test took over {NODE_TIMEOUT_S}s:\n{output.decode()}")
    finally:
        app.stop()
    report = output.decode()
    print(report)  # shown with -rP, and on failure
    assert node.returncode == 0, f"node --test failed:\n{report}\napp log: {app.log_file}"
    assert "# fail 0" in report and "# pass 0" not in report, report
