"""The `vidgen` command line as its user meets it: one line when the database cannot be
reached, progress only on a terminal, `--version`, the credit kinds an operator may add, and
the DATABASE_URL `vidgen dev` leaves for the other commands (app/cli/)."""

import os
import pty
import select
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import get_args

import pytest

from app.cli.credits import OperatorKind
from app.cli.dev import uses_own_postgres
from app.cli.env_file import MARKER, record_database_url, recorded_by_dev
from app.core.config import to_asyncpg_url
from app.credits.schemas import CreditGrant
from app.ops.backup.create import create_backup
from app.ops.localpg import free_port
from tests.support.helpers import VIDGEN, libpq, run_vidgen

BACKUP_NAME = "backup_20260101_000000.sql.gz"
# Every command that touches the database (README, "Commands").
DATABASE_COMMANDS = [
    ("migrate", "status"),
    ("migrate", "deploy"),
    ("migrate", "resolve", "--rolled-back", "20260101000000_x"),
    ("backup", "create"),
    ("backup", "restore", BACKUP_NAME),
    ("backup", "restore", BACKUP_NAME, "--yes"),
    ("audit",),
    ("credits", "add", "--user", "someone@example.com", "--amount", "5"),
    ("models", "sync"),
    ("models", "status"),
    ("media", "gc"),
    ("maintenance", "on"),
]


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_an_unreachable_database_is_one_line_and_exit_2(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    (tmp_path / BACKUP_NAME).write_bytes(b"")  # restore must get as far as the database
    env = {
        "DATABASE_URL": f"postgresql://vidgen:hunter2@127.0.0.1:{port}/vidgen",
        "BACKUP_DIR": str(tmp_path),
        "MEDIA_DIR": str(tmp_path / "media"),
    }
    result = run_vidgen(*command, env=env, timeout=60)
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [
        f"error: cannot reach PostgreSQL at 127.0.0.1:{port} (connection refused)"
    ], result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_version_is_the_package_version() -> None:
    result = run_vidgen("--version")
    assert result.returncode == 0, result
    assert result.stdout.strip() == f"vidgen {version('vidgen')}"


def test_credits_add_offers_only_the_kinds_an_operator_may_add() -> None:
    accepted = get_args(CreditGrant.model_fields["kind"].annotation)
    assert {kind.value for kind in OperatorKind} == set(accepted)
    help_text = run_vidgen("credits", "add", "--help", env={"COLUMNS": "200"}).stdout
    assert "grant|purchase|roll|adjustment" in help_text
    assert "debit" not in help_text and "refund" not in help_text
    refused = run_vidgen("credits", "add", "--user", "x", "--amount", "1", "--kind", "debit")
    assert refused.returncode == 2  # a usage error, before anything touches the database
    assert "'debit' is not one of" in refused.stderr


def run_on_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """`vidgen ARGS` with stderr on a pseudo-terminal (as in an operator's shell); returns
    its exit status and everything written to the terminal."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [VIDGEN, *args],
        env={**os.environ, "APP_ENV": "test", "TERM": "xterm", "COLUMNS": "120", **env},
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    written = bytearray()
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal's last writer is gone
            break
        if not chunk:
            break
        written += chunk
    os.close(controller)
    return process.wait(timeout=60), written.decode(errors="replace")


async def test_backup_progress_shows_on_a_terminal_only(database_url: str, tmp_path: Path) -> None:
    await create_backup(libpq(database_url), tmp_path)
    env = {"DATABASE_URL": database_url, "BACKUP_DIR": str(tmp_path)}

    piped = run_vidgen("backup", "status", env=env)
    assert piped.returncode == 0, piped
    assert "verifying" not in piped.stderr and "\x1b[" not in piped.stderr

    code, terminal = run_on_terminal("backup", "status", env=env)
    assert code == 0, terminal
    assert "verifying backup_" in terminal  # rich's progress line, erased when done

    code, terminal = run_on_terminal("backup", "create", env=env)
    assert code == 0, terminal
    assert "dumping" in terminal


def test_dev_records_its_database_url_without_touching_a_users_own(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    first = "postgresql://postgres:pw@127.0.0.1:54329/vidgen"
    assert "wrote DATABASE_URL" in record_database_url(first, env_file)
    assert env_file.read_text() == f"{MARKER}\nDATABASE_URL={first}\n"
    assert env_file.stat().st_mode & 0o077 == 0  # it holds the local server's password
    assert recorded_by_dev(env_file) == first

    # The next run, on another port: its own line is updated in place, the rest kept.
    env_file.write_text(f"FAL_KEY=mine\n{env_file.read_text()}ADMIN_TOKEN=also-mine\n")
    moved = first.replace("54329", "54330")
    record_database_url(moved, env_file)
    assert env_file.read_text() == (
        f"FAL_KEY=mine\n{MARKER}\nDATABASE_URL={moved}\nADMIN_TOKEN=also-mine\n"
    )
    assert "already" in record_database_url(moved, env_file)

    # A user's own line is never replaced: a note says what to export instead.
    users = tmp_path / "users.env"
    users.write_text("APP_ENV=development\nDATABASE_URL='postgresql://me@db.internal/app'\n")
    note = record_database_url(first, users)
    assert note.startswith("note:") and first in note
    assert users.read_text().endswith("DATABASE_URL='postgresql://me@db.internal/app'\n")
    assert recorded_by_dev(users) is None

    # A file that ends without a newline keeps its last line whole.
    bare = tmp_path / "bare.env"
    bare.write_text("FAL_KEY=mine")
    record_database_url(first, bare)
    assert bare.read_text() == f"FAL_KEY=mine\n\n{MARKER}\nDATABASE_URL={first}\n"


def test_dev_starts_its_own_postgres_unless_the_user_configured_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    ours = "postgresql://postgres:pw@127.0.0.1:54329/vidgen"
    assert uses_own_postgres(None)
    record_database_url(ours, Path(".env"))
    # Settings read our line from .env: it names our server (stopped since), not the user's.
    assert uses_own_postgres(to_asyncpg_url(ours))
    assert not uses_own_postgres(to_asyncpg_url("postgresql://me@db.internal/app"))
    # The same URL exported by the user is theirs.
    monkeypatch.setenv("DATABASE_URL", ours)
    assert not uses_own_postgres(to_asyncpg_url(ours))
