"""The README's two commands are the contract with a newcomer: check the run command for real."""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from app.core.config import PROJECT_ROOT
from app.ops.localpg import free_port


def readme_commands() -> list[str]:
    text = (PROJECT_ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_readme_opens_with_the_run_and_test_commands() -> None:
    run, test = readme_commands()
    assert run.endswith("vidgen dev")
    assert test == "./scripts/test"
    assert test in (PROJECT_ROOT / ".ci" / "run").read_text()


def test_readme_run_command_serves_health_on_a_clean_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(PROJECT_ROOT), str(clone)], check=True)
    # Uncommitted work in progress is tested as it stands (in CI the tree is clean anyway).
    tracked = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in tracked:
        if (PROJECT_ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, clone / name)
    port = free_port()
    run = readme_commands()[0] + f" --port {port}"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VIRTUAL_ENV"}}
    process = subprocess.Popen(
        ["bash", "-c", run],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code
                if status == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)  # polling a server that is starting up, not synchronising a test
        assert status == 200, process.stdout.read() if process.poll() is not None else status
        # The DATABASE_URL of its own PostgreSQL is in .env, where a second terminal's
        # commands find it.
        recorded = re.search(r"^DATABASE_URL=(.+)$", (clone / ".env").read_text(), re.MULTILINE)
        assert recorded is not None
        second_terminal = subprocess.run(
            [str(clone / ".venv" / "bin" / "vidgen"), "migrate", "status"],
            cwd=clone, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert second_terminal.returncode == 0, second_terminal
    finally:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert "stopping local PostgreSQL" in output
    assert f"DATABASE_URL={recorded[1]}" in output  # printed too
