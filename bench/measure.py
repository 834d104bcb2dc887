"""What one load run yields, and who spent the CPU during it."""

import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import cpu_seconds


@dataclass
class RunResult:
    """Throughput and latency (milliseconds) of one run, plus CPU µs per request by role."""

    name: str
    concurrency: int
    requests: int
    seconds: float
    p50: float
    p95: float
    p99: float
    mean: float = 0.0
    max: float = 0.0
    errors: int = 0
    cpu_us: dict[str, float] = field(default_factory=dict)
    new_connections: float | None = None  # database connections opened per request
    box_busy: float | None = None  # share of all the machine's CPUs busy during the run
    notes: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"rps": round(self.rps, 1)}


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def from_latencies(
    name: str, concurrency: int, latencies_s: list[float], seconds: float, errors: int = 0
) -> RunResult:
    ordered = sorted(latencies_s)
    ms = [x * 1000 for x in ordered]
    return RunResult(
        name=name,
        concurrency=concurrency,
        requests=len(ms),
        seconds=seconds,
        p50=percentile(ms, 50),
        p95=percentile(ms, 95),
        p99=percentile(ms, 99),
        mean=statistics.fmean(ms) if ms else 0.0,
        max=ms[-1] if ms else 0.0,
        errors=errors,
    )


class CpuMeter:
    """CPU seconds spent by process groups (app workers, PostgreSQL, the load generator).

    Groups are functions returning pids, re-read at the end so processes that appeared
    during the run (new pool connections) count from zero. `self` and `children` are this
    process and the children it reaped (wrk, pg_dump pipelines) over the run.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.spent: dict[str, float] = {}
        self.box_busy: float | None = None

    @contextmanager
    def measure(self, loadgen: str = "children") -> Iterator[None]:
        before = {role: {p: cpu_seconds(p) for p in pids()} for role, pids in self.groups.items()}
        usage = resource.RUSAGE_CHILDREN if loadgen == "children" else resource.RUSAGE_SELF
        start = resource.getrusage(usage)
        box_before = box_ticks()
        yield
        box_after = box_ticks()
        end = resource.getrusage(usage)
        total = box_after[0] - box_before[0]
        self.box_busy = (box_after[1] - box_before[1]) / total if total else None
        for role, pids in self.groups.items():
            now = {p: cpu_seconds(p) for p in pids()}
            self.spent[role] = sum(now[p] - before[role].get(p, 0.0) for p in now)
        self.spent["load generator"] = (end.ru_utime - start.ru_utime) + (
            end.ru_stime - start.ru_stime
        )

    def per_request_us(self, requests: int) -> dict[str, float]:
        if not requests:
            return {}
        return {role: round(s / requests * 1e6, 1) for role, s in self.spent.items()}


def box_ticks() -> tuple[int, int]:
    """(all, busy) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]), sum(fields[:8]) - idle


class Stopwatch:
    def __enter__(self) -> "Stopwatch":
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.started
