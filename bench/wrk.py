"""Closed-loop HTTP load with wrk (Debian's `wrk`): C keep-alive connections, each sending its
next request as soon as the previous answer arrives. Scripts live in bench/lua/."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.measure import CpuMeter, RunResult

LUA_DIR = Path(__file__).with_name("lua")
INSTALL_HINT = "wrk not found: apt-get install -y wrk"


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(INSTALL_HINT)
    return found


def script(name: str, workdir: Path) -> Path:
    """The named script with the shared `done()` reporter appended."""
    path = workdir / f"{name}.lua"
    if not path.exists():
        text = (LUA_DIR / f"{name}.lua").read_text() + "\n" + (LUA_DIR / "report.lua").read_text()
        path.write_text(text)
    return path


def threads_for(connections: int) -> int:
    return 1 if connections < 2 else 2  # one per core on this box


def run(
    name: str,
    url: str,
    lua: str,
    args: list[str],
    *,
    connections: int,
    seconds: float,
    meter: CpuMeter | None = None,
    workdir: Path | None = None,
) -> RunResult:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="vidgen-bench-wrk-"))
    threads = threads_for(connections)
    command = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script(lua, workdir)),
        url,
        "--",
        *args,
    ]
    if meter is not None:
        with meter.measure("children"):
            completed = subprocess.run(command, capture_output=True, text=True, check=False)
    else:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((x for x in completed.stdout.splitlines() if x.startswith("BENCH ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr[-2000:]}")
    data = json.loads(line.removeprefix("BENCH "))
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    result = RunResult(
        name=name,
        concurrency=connections,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50=data["p50"] / 1000,
        p95=data["p95"] / 1000,
        p99=data["p99"] / 1000,
        mean=data["mean"] / 1000,
        max=data["max"] / 1000,
        errors=errors,
    )
    if meter is not None:
        result.cpu_us = meter.per_request_us(result.requests)
        result.box_busy = meter.box_busy
    return result
