"""`vidgen backup restore`: replace the database with a verified backup, all or nothing."""

import asyncio
import contextlib
import hashlib
import secrets
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import asyncpg

from app.ops.backup import repository
from app.ops.backup.dump_scan import DumpScanner, UnsafeDump
from app.ops.backup.errors import BackupError
from app.ops.backup.files import BackupFile
from app.ops.backup.gzip_stream import CHUNK, GzipInflater
from app.ops.backup.pgtools import check_psql_restricts, find_pg_tool, tool_connection, tool_version
from app.ops.backup.signing import configured_key
from app.ops.backup.verify import BackupInfo, verify_backup

# What psql says when the dump reaches a meta-command while it runs restricted.
PSQL_RESTRICTED = "backslash commands are restricted"


async def current_row_counts(dsn: str) -> dict[str, int]:
    """What a restore would replace: each table's rows in the database at `dsn` now."""
    conn = await asyncpg.connect(dsn)
    try:
        return await repository.table_row_counts(conn)
    finally:
        await conn.close()


async def restore_backup(dsn: str, backup: BackupFile) -> BackupInfo:
    """Replace the database at `dsn` with `backup`, all or nothing; return what was restored.

    A backup that fails its checksum, gzip test or meta-command scan, or (with
    BACKUP_SIGNING_KEY set) has no valid signature, is refused before psql starts.
    """
    psql = find_pg_tool("psql")
    check_psql_restricts(psql, tool_version(psql))
    info = await asyncio.to_thread(verify_backup, backup, configured_key())
    if not info.valid:
        reasons = "; ".join(p for p in info.problems() if not p.startswith("metadata"))
        raise BackupError(f"refusing to restore {backup.path.name}: {reasons}")
    await asyncio.to_thread(_feed_psql, psql, dsn, info)
    conn = await asyncpg.connect(dsn)
    try:
        await repository.analyze(conn)  # a dump carries no planner statistics
    finally:
        await conn.close()
    return info


def _inflate(path: Path, read: Callable[[bytes], None]) -> Iterator[bytes]:
    """The dump at `path` inflated, piece by piece; `read` sees each piece of the file."""
    with open(path, "rb") as handle:
        inflater = GzipInflater()
        while chunk := handle.read(CHUNK):
            read(chunk)
            yield from inflater.feed(chunk)


def _feed_psql(psql: Path, dsn: str, backup: BackupInfo) -> None:
    """Pipe the inflated dump through psql inside BEGIN … COMMIT; stop at the first error.

    We send BEGIN and COMMIT ourselves rather than use `--single-transaction`: psql issues
    that COMMIT at end of input however the input ended, so a feed cut short (this process
    killed) would commit half a restore. Here, input that stops early ends psql's session
    with the transaction open, and the server rolls it back.

    psql starts restricted (`\\restrict`) under a key made here that the dump cannot know, so
    a meta-command the line scan cannot see (dump_scan.py says which) is an error, not a
    command. The dump is scanned again as it streams, and COMMIT is sent only if the bytes
    fed hash to those verified: a file swapped since is rolled back.
    """
    url, env = tool_connection(dsn)
    command = [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", f"--dbname={url}"]
    restrict = f"\\restrict {secrets.token_hex(32)}\n".encode()
    scanner, digest = DumpScanner(), hashlib.sha256()
    name = backup.path.name
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=env
        )
        assert process.stdin is not None
        completed = False
        try:
            process.stdin.write(restrict + repository.BEGIN_RESTORE)
            for data in _inflate(backup.path, digest.update):
                process.stdin.write(scanner.feed(data))
            process.stdin.write(scanner.finish())
            if digest.hexdigest() != backup.sha256:
                raise BackupError(
                    f"{name} changed while it was being restored; rolled back, nothing changed"
                )
            process.stdin.write(repository.COMMIT_RESTORE)
            completed = True
        except UnsafeDump as error:
            raise BackupError(f"refusing to restore {name}: {error}; nothing changed") from None
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
            if PSQL_RESTRICTED in message:
                raise BackupError(
                    f"refusing to restore {name}: psql met a meta-command in the dump and "
                    f"refused it; rolled back, nothing changed. {message}"
                )
            raise BackupError(f"restore failed and was rolled back; nothing changed. {message}")


def _close_quietly(stream: IO[bytes]) -> None:
    with contextlib.suppress(BrokenPipeError):  # flushing to a psql that already exited
        stream.close()
