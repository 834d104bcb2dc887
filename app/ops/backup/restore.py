"""`vidgen backup restore`: replace the database with a verified backup, all or nothing."""

import asyncio
import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import asyncpg

from app.ops.backup import repository
from app.ops.backup.errors import BackupError
from app.ops.backup.files import BackupFile
from app.ops.backup.gzip_stream import CHUNK, GzipInflater
from app.ops.backup.pgtools import find_pg_tool, tool_connection
from app.ops.backup.verify import BackupInfo, verify_backup


async def current_row_counts(dsn: str) -> dict[str, int]:
    """What a restore would replace: each table's rows in the database at `dsn` now."""
    conn = await asyncpg.connect(dsn)
    try:
        return await repository.table_row_counts(conn)
    finally:
        await conn.close()


async def restore_backup(dsn: str, backup: BackupFile) -> BackupInfo:
    """Replace the database at `dsn` with `backup`, all or nothing; return what was restored.

    A backup that fails its checksum or gzip test is refused before the database is touched.
    """
    info = await asyncio.to_thread(verify_backup, backup)
    if not info.valid:
        reasons = "; ".join(p for p in info.problems() if not p.startswith("metadata"))
        raise BackupError(f"refusing to restore {backup.path.name}: {reasons}")
    await asyncio.to_thread(_feed_psql, find_pg_tool("psql"), dsn, backup.path)
    conn = await asyncpg.connect(dsn)
    try:
        await repository.analyze(conn)  # a dump carries no planner statistics
    finally:
        await conn.close()
    return info


def _inflate(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        inflater = GzipInflater()
        while chunk := handle.read(CHUNK):
            yield from inflater.feed(chunk)


def _feed_psql(psql: Path, dsn: str, dump: Path) -> None:
    """Pipe the inflated dump through psql inside BEGIN … COMMIT; stop at the first error.

    We send BEGIN and COMMIT ourselves rather than use `--single-transaction`: psql issues
    that COMMIT at end of input however the input ended, so a feed cut short (this process
    killed) would commit half a restore. Here, input that stops early ends psql's session
    with the transaction open, and the server rolls it back.
    """
    url, env = tool_connection(dsn)
    command = [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", f"--dbname={url}"]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=env
        )
        assert process.stdin is not None
        completed = False
        try:
            process.stdin.write(repository.BEGIN_RESTORE)
            for data in _inflate(dump):
                process.stdin.write(data)
            process.stdin.write(repository.COMMIT_RESTORE)
            completed = True
        except BrokenPipeError:
            pass  # psql stopped at an error; its exit status and stderr say which
        finally:
            if not completed:
                process.kill()  # before closing stdin, which psql would read as the end
            _close_quietly(process.stdin)
            process.wait()
        if process.returncode != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            raise BackupError(f"restore failed and was rolled back; nothing changed. {message}")


def _close_quietly(stream: IO[bytes]) -> None:
    with contextlib.suppress(BrokenPipeError):  # flushing to a psql that already exited
        stream.close()
