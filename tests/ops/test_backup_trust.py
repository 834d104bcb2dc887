"""Backups you can trust: restore runs SQL and nothing else, and with BACKUP_SIGNING_KEY set
only backups this key signed (app/ops/backup/dump_scan.py, signing.py)."""

import gzip
import hashlib
import hmac
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.ops.backup.dump_scan import LINE_LIMIT, DumpScanner, UnsafeDump
from app.ops.backup.pgtools import find_pg_tool
from tests.support.backups import files_in, fingerprints
from tests.support.factories import create_user
from tests.support.helpers import libpq, run_vidgen

SIGNING_KEY = "a-test-signing-key-of-some-length"


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture
def psql_log(tmp_path: Path) -> Path:
    """Where the psql below notes each time it starts for real (not for `--version`)."""
    return tmp_path / "psql-started"


@pytest.fixture
def env(database_url: str, backup_dir: Path, tmp_path: Path, psql_log: Path) -> dict[str, str]:
    """The CLI's environment, its psql a wrapper that logs each start, then runs the real one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "psql"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = --version ] || echo started >> "{psql_log}"\n'
        f'exec "{find_pg_tool("psql")}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return {"DATABASE_URL": database_url, "BACKUP_DIR": str(backup_dir), "PG_BIN_DIR": str(bin_dir)}


def create_backup(env: dict[str, str]) -> Path:
    created = run_vidgen("backup", "create", env=env)
    assert created.returncode == 0, created.stderr
    return Path(created.stdout.split("backup written: ", 1)[1].split("\n", 1)[0])


def rewrite_backup(dump: Path, name: str, change: Callable[[bytes], bytes]) -> Path:
    """A copy of `dump` whose SQL is changed, re-gzipped, with a checksum that matches again:
    damage this is not, so only the check under test can catch it."""
    copy = dump.with_name(name)
    copy.write_bytes(gzip.compress(change(gzip.decompress(dump.read_bytes()))))
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    copy.with_name(name + ".sha256").write_text(f"{digest}  {name}\n")
    shutil.copyfile(dump.with_name(dump.name + ".json"), copy.with_name(name + ".json"))
    return copy


def metadata_of(dump: Path) -> dict[str, Any]:
    return dict(json.loads(dump.with_name(dump.name + ".json").read_text()))


def absent(*paths: Path) -> bool:
    return not any(path.exists() for path in paths)


def insert_before(marker: bytes, text: bytes) -> Callable[[bytes], bytes]:
    def change(sql: bytes) -> bytes:
        at = sql.index(marker)
        return sql[:at] + text + sql[at:]

    return change


# -- psql meta-commands ---------------------------------------------------------------------


async def test_restore_refuses_a_meta_command_before_psql_starts(
    client: httpx.AsyncClient,
    database_url: str,
    env: dict[str, str],
    tmp_path: Path,
    psql_log: Path,
) -> None:
    dump = create_backup(env)
    pwned = tmp_path / "pwned"
    # Before the first CREATE TABLE: fed to psql, the dump's DROPs would have run by then.
    tampered = rewrite_backup(
        dump,
        "backup_20200101_000000.sql.gz",
        insert_before(b"CREATE TABLE", f"\\! touch {pwned}\n".encode()),
    )
    line = gzip.decompress(tampered.read_bytes()).split(b"\n").index(f"\\! touch {pwned}".encode())
    await create_user(client, credits=3)  # so a restore, had it run, would show
    before = await fingerprints(database_url)

    restore = run_vidgen("backup", "restore", str(tampered), "--yes", env=env)
    assert restore.returncode == 1
    refusal = f"refusing to restore {tampered.name}: line {line + 1} of the dump is a psql "
    assert refusal + "meta-command (\\! touch /" in restore.stderr
    assert absent(psql_log, pwned)
    assert await fingerprints(database_url) == before

    status = run_vidgen("backup", "status", env=env)
    assert f"{tampered.name}: line {line + 1} of the dump is a psql meta-command" in status.stdout
    assert f"newest valid backup: {dump.name}" in status.stdout  # the tampered one is not valid


@pytest.mark.parametrize(
    "hidden",
    [
        pytest.param(b"SELECT 1; \\! touch {pwned}\n", id="after-sql-on-its-line"),
        # psql reads the COPY line as a string's text, then runs the meta-command; a line
        # scan takes it all for COPY data.
        pytest.param(
            b"SELECT $x$\nCOPY t FROM stdin;\n$x$;\n\\! touch {pwned}\n\\.\n", id="in-fake-copy"
        ),
    ],
)
async def test_psql_refuses_a_meta_command_the_line_scan_cannot_see(
    client: httpx.AsyncClient, database_url: str, env: dict[str, str], tmp_path: Path, hidden: bytes
) -> None:
    dump = create_backup(env)
    pwned = tmp_path / "pwned"
    injected = hidden.replace(b"{pwned}", str(pwned).encode())
    tampered = rewrite_backup(
        dump, "backup_20200101_000000.sql.gz", insert_before(b"CREATE TABLE", injected)
    )
    await create_user(client, credits=3)
    before = await fingerprints(database_url)

    restore = run_vidgen("backup", "restore", tampered.name, "--yes", env=env)
    assert restore.returncode == 1
    assert "psql met a meta-command in the dump and refused it; rolled back" in restore.stderr
    assert absent(pwned)
    assert await fingerprints(database_url) == before


async def test_backslashes_in_copy_data_restore_as_they_were(
    client: httpx.AsyncClient, database_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    user = await create_user(client, credits=5)
    pwned = tmp_path / "pwned"
    conn = await asyncpg.connect(libpq(database_url))
    try:
        await conn.execute(
            "UPDATE users SET email = $1 WHERE id = $2", "back\\slash\\.me@x", user.id
        )
        # First columns, so COPY data lines start with a backslash: an escaped one, the
        # escape of a carriage return (`\restrict …`), a `\.` that is not alone on its line.
        keys = [f"\\! touch {pwned}", "\\.", "\\", "\restrict abc", "\\unrestrict abc", "\\.\\."]
        await conn.executemany(
            'INSERT INTO "rateLimits" (key, tokens) VALUES ($1, 1)', [(key,) for key in keys]
        )
    finally:
        await conn.close()
    backed_up = await fingerprints(database_url)

    dump = create_backup(env)
    lines = gzip.decompress(dump.read_bytes()).split(b"\n")
    for escaped in (f"\\\\! touch {pwned}", "\\\\.", "\\\\", "\\restrict abc", "\\\\.\\\\."):
        assert any(line.startswith(f"{escaped}\t".encode()) for line in lines), escaped
    await create_user(client)
    assert await fingerprints(database_url) != backed_up

    restore = run_vidgen("backup", "restore", dump.name, "--yes", env=env)
    assert restore.returncode == 0, restore.stderr
    assert await fingerprints(database_url) == backed_up
    assert absent(pwned)


async def test_create_refuses_a_database_whose_dump_restore_would_refuse(
    database_url: str, env: dict[str, str], backup_dir: Path
) -> None:
    conn = await asyncpg.connect(libpq(database_url))
    try:
        # A line of a function body that starts with a backslash: SQL to psql (it is inside
        # dollar quotes) but not to the line scan, so such a backup could not be restored.
        await conn.execute("CREATE FUNCTION odd() RETURNS text LANGUAGE sql AS $$SELECT '\n\\x'$$")
    finally:
        await conn.close()

    refused = run_vidgen("backup", "create", env=env)
    assert refused.returncode == 1
    assert "pg_dump wrote a dump that restore would refuse: line" in refused.stderr
    assert "psql meta-command (\\x'$$;)" in refused.stderr
    assert files_in(backup_dir) == []


# -- signatures -----------------------------------------------------------------------------


async def test_with_a_signing_key_only_signed_unaltered_backups_restore(
    client: httpx.AsyncClient,
    database_url: str,
    env: dict[str, str],
    psql_log: Path,
) -> None:
    signed_env = {**env, "BACKUP_SIGNING_KEY": SIGNING_KEY}
    user = await create_user(client, credits=100)
    unsigned = create_backup(env)
    signed = create_backup(signed_env)
    expected = hmac.new(SIGNING_KEY.encode(), signed.read_bytes(), hashlib.sha256).hexdigest()
    assert metadata_of(signed)["hmac_sha256"] == expected
    assert metadata_of(unsigned)["hmac_sha256"] is None
    email = user.email.encode()
    altered = rewrite_backup(  # one byte of the SQL (the user's email): gzip and checksum fine
        signed,
        "backup_20200101_000000.sql.gz",
        lambda sql: sql.replace(email, b"#" + email[1:]),
    )
    backed_up = await fingerprints(database_url)
    await create_user(client, credits=3)
    before = await fingerprints(database_url)

    refused_altered = run_vidgen("backup", "restore", altered.name, "--yes", env=signed_env)
    assert refused_altered.returncode == 1
    assert f"refusing to restore {altered.name}: signature mismatch" in refused_altered.stderr
    refused_unsigned = run_vidgen("backup", "restore", unsigned.name, "--yes", env=signed_env)
    assert refused_unsigned.returncode == 1
    assert f"refusing to restore {unsigned.name}: signature missing" in refused_unsigned.stderr
    assert absent(psql_log)
    assert await fingerprints(database_url) == before

    status = run_vidgen("backup", "status", env=signed_env)
    assert f"{altered.name}: signature mismatch" in status.stdout
    assert f"{unsigned.name}: signature missing" in status.stdout
    assert f"newest valid backup: {signed.name}" in status.stdout

    restored = run_vidgen("backup", "restore", signed.name, "--yes", env=signed_env)
    assert restored.returncode == 0, restored.stderr
    assert await fingerprints(database_url) == backed_up


# -- the scanner, fed in every way a stream can split -----------------------------------------

DUMP = (
    b"--\n-- PostgreSQL database dump\n--\n\n\\restrict Abc123\n\n"
    b"SET standard_conforming_strings = on;\n"
    b"COPY public.t (a, b) FROM stdin;\n"
    b"\\\\! touch x\t1\n\\N\t\\.\n\\.\\.\t2\n\\restrict\t3\n\\.\n"
    b"SELECT '\\x';\n"
    b"COPY public.u (a) FROM stdin;\n\\.\r\n"
    b"\\unrestrict Abc123\n\n"
)


def scan(dump: bytes, piece: int) -> bytes:
    scanner = DumpScanner()
    passed = [scanner.feed(dump[at : at + piece]) for at in range(0, len(dump), piece)]
    return b"".join(passed) + scanner.finish()


def test_the_scanner_passes_a_dump_on_with_pg_dumps_guard_blanked() -> None:
    expected = DUMP.replace(b"\\restrict Abc123\n", b"\n").replace(b"\\unrestrict Abc123\n", b"\n")
    for piece in range(1, len(DUMP) + 1):
        assert scan(DUMP, piece) == expected, piece


@pytest.mark.parametrize(
    ("dump", "line"),
    [
        (b"SELECT 1;\n\\! touch x\n", 2),
        (b"SELECT 1;\n\\restrict a b\n", 2),  # not pg_dump's guard
        (b"COPY t (a) FROM stdin;\n\\\\x\n\\.\n\\copy t from x\n", 4),
        (b"COPY t (a) FROM stdin;\n\\.\n\\.\n", 3),  # `\.` outside COPY data
        (b"COPY t (a) FROM stdin ;\n\\! x\n", 2),  # not a COPY line pg_dump writes
        (b"SELECT 1;\n\\! no newline at the end", 2),
        (b"SELECT 1;\n\\" + b"x" * LINE_LIMIT + b"\n", 2),  # too long to hold: judged early
    ],
)
def test_the_scanner_refuses_a_meta_command_wherever_the_stream_splits(
    dump: bytes, line: int
) -> None:
    for piece in (1, 2, 3, 7, len(dump)):
        with pytest.raises(UnsafeDump, match=rf"^line {line} of the dump is a psql meta-command"):
            scan(dump, piece)


def test_the_scanner_follows_copy_data_across_lines_too_long_to_hold() -> None:
    header = b"COPY t (" + b"a" * LINE_LIMIT + b") FROM stdin;\n"
    dump = header + b"\\\\" + b"y" * LINE_LIMIT + b"\n\\.\nSELECT 1;\n"
    for piece in (1000, 4096, len(dump)):
        assert scan(dump, piece) == dump
    with pytest.raises(UnsafeDump, match=r"^line 5 of the dump"):
        scan(dump + b"\\! x\n", 4096)
    with pytest.raises(UnsafeDump, match=r"^the dump ends inside COPY data"):
        scan(header + b"1\n", 4096)


def test_the_scanner_shows_no_control_characters() -> None:
    with pytest.raises(UnsafeDump) as refused:
        scan(b"\\! echo \x1b[2J" + b"x" * 100 + b"\n", 10)
    assert "\x1b" not in str(refused.value)
    assert "(\\! echo ?[2Jxxx" in str(refused.value) and "x...)" in str(refused.value)
