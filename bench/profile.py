"""Sampling a worker with py-spy while load runs, and a readable summary of where it spent CPU.

py-spy records only samples where the thread is busy (idle waits on epoll are left out), so
the sample count over (rate x seconds) is also how busy the worker was.
"""

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::\d+)?\)$")
# Inclusive shares worth knowing, each a test on one frame ("function (file:line)").
MARKERS: list[tuple[str, tuple[str, ...]]] = [
    ("SQLAlchemy (ORM, Core, pool)", ("(sqlalchemy/",)),
    ("asyncpg driver (protocol, codecs)", ("(asyncpg/",)),
    ("pool pre-ping (BEGIN/ROLLBACK per checkout)", ("do_ping", "_do_ping", "ping (")),
    ("pydantic (validation, serialization)", ("(pydantic/", "(pydantic_core/")),
    ("FastAPI + Starlette (routing, deps, responses)", ("(fastapi/", "(starlette/")),
    ("uvicorn + httptools (HTTP)", ("(uvicorn/", "(httptools/")),
    ("logging (two access-log lines per request)", ("(logging/",)),
    ("prometheus_client (metrics)", ("(prometheus_client/",)),
    ("Ed25519 verification", ("_any_key_verifies",)),
    ("app/ code itself", ("(app/",)),
]


@dataclass
class Profile:
    samples: int = 0
    rate: int = 0
    seconds: float = 0.0
    packages: Counter[str] = field(default_factory=Counter)
    leaves: Counter[str] = field(default_factory=Counter)
    inclusive: dict[str, int] = field(default_factory=dict)

    @property
    def busy(self) -> float:
        return self.samples / (self.rate * self.seconds) if self.rate and self.seconds else 0.0

    def markdown(self, title: str, top: int = 15) -> str:
        lines = [
            f"#### {title}",
            "",
            f"{self.samples} samples at {self.rate} Hz over {self.seconds:.0f} s: the worker was "
            f"on CPU {self.busy:.0%} of the time.",
            "",
            "| inclusive (a frame of it anywhere on the stack) | share of busy samples |",
            "|---|---:|",
        ]
        for label, count in self.inclusive.items():
            lines.append(f"| {label} | {count / max(1, self.samples):.1%} |")
        lines += ["", "| self time by package | share |", "|---|---:|"]
        for package, count in self.packages.most_common(top):
            lines.append(f"| {package} | {count / max(1, self.samples):.1%} |")
        lines += ["", "| hottest leaf functions | share |", "|---|---:|"]
        for leaf, count in self.leaves.most_common(top):
            lines.append(f"| `{leaf}` | {count / max(1, self.samples):.1%} |")
        return "\n".join(lines) + "\n"


def package_of(path: str) -> str:
    """py-spy names files relative to sys.path: the first component is the package."""
    top = path.split("/", 1)[0].removesuffix(".py")
    return "app (vidgen)" if top == "app" else top


def summarize(raw: Path, rate: int, seconds: float) -> Profile:
    profile = Profile(rate=rate, seconds=seconds)
    inclusive: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if FRAME.match(f)]
        if not frames:
            continue
        profile.samples += count
        leaf = FRAME.match(frames[-1])
        assert leaf is not None
        short = f"{leaf['func']} ({Path(leaf['file']).name})"
        profile.leaves[short] += count
        profile.packages[package_of(leaf["file"])] += count
        for label, needles in MARKERS:
            if any(needle in frame for frame in frames for needle in needles):
                inclusive[label] += count
    profile.inclusive = {label: inclusive[label] for label, _ in MARKERS}
    return profile


def py_spy() -> str | None:
    return shutil.which("py-spy") or (
        str(p) if (p := Path(__import__("sys").executable).with_name("py-spy")).exists() else None
    )


def start(pid: int, output: Path, seconds: float, rate: int) -> subprocess.Popen[bytes]:
    binary = py_spy()
    if binary is None:
        raise SystemExit("py-spy not found: pip install py-spy (into this virtualenv)")
    command = [binary, "record", "--pid", str(pid), "--rate", str(rate)]
    command += ["--duration", str(round(seconds)), "--format", "raw", "--output", str(output)]
    command += ["--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_perf(pid: int, output: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    """`perf record` of the same process, when perf is installed: CPU by shared object."""
    binary = shutil.which("perf")
    if binary is None:
        return None
    command = [binary, "record", "-F", "499", "-p", str(pid), "-o", str(output)]
    command += ["--", "sleep", str(round(seconds))]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_by_object(data: Path) -> dict[str, float]:
    """Share of CPU samples per shared object (libpython, uvloop, asyncpg, kernel, ...)."""
    command = ["perf", "report", "-i", str(data), "--no-children", "--sort", "dso", "--stdio"]
    report = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    shares: dict[str, float] = {}
    for line in report.splitlines():
        match = re.match(r"^\s+([\d.]+)%\s+(\S+)", line)
        if match:
            shares[match[2]] = float(match[1]) / 100
    return shares
