"""`vidgen backup create`: pg_dump's output, gzipped and hashed in one pass, written durably."""

import asyncio
import hashlib
import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import asyncpg

from app.ops.backup import repository
from app.ops.backup.dump_scan import DumpScanner, UnsafeDump
from app.ops.backup.errors import BackupError
from app.ops.backup.files import BackupFile, BackupMetadata, claim_name
from app.ops.backup.gzip_stream import CHUNK, GZIP_WBITS
from app.ops.backup.pgtools import check_dump_version, find_pg_tool, tool_connection, tool_version
from app.ops.backup.signing import configured_key, new_signer
from app.ops.backup.units import human_bytes
from app.ops.migrate import read_history

# Free space wanted in BACKUP_DIR, as a multiple of the database's on-disk size.
FREE_SPACE_FACTOR = 2
# Compression is the pipeline's bottleneck (pg_dump itself streams several times faster).
# Level 3 takes about half the time of gzip's default 6 for a few percent more bytes.
GZIP_LEVEL = 3
DUMP_OPTIONS = ("--format=plain", "--clean", "--if-exists", "--no-owner", "--no-privileges")

Progress = Callable[[int, int], None]
"""Called with (bytes read from pg_dump, compressed bytes written) as a backup streams."""


@dataclass(frozen=True)
class StreamedDump:
    sha256: str  # of the bytes written
    hmac_sha256: str | None  # of the same bytes, under BACKUP_SIGNING_KEY when it is set
    dump_bytes: int
    size_bytes: int


async def migration_head(conn: asyncpg.Connection) -> str | None:
    applied = [row for row in await read_history(conn) if row.is_applied]
    return applied[-1].migration_name if applied else None


def check_free_space(backup_dir: Path, database_size: int, free_override: int | None) -> None:
    """Refuse unless BACKUP_DIR has FREE_SPACE_FACTOR times the database's size free."""
    needed = FREE_SPACE_FACTOR * database_size
    free = free_override if free_override is not None else _free_bytes(backup_dir)
    if free < needed:
        raise BackupError(
            f"not enough free space in {backup_dir}: {human_bytes(free)} free, but a backup "
            f"wants {human_bytes(needed)} ({FREE_SPACE_FACTOR}x the database's size of "
            f"{human_bytes(database_size)}). Free some space (e.g. vidgen backup prune "
            "--keep N) or point BACKUP_DIR elsewhere."
        )


def _free_bytes(directory: Path) -> int:
    # BACKUP_DIR may not exist yet; it will live on the filesystem of its nearest ancestor.
    existing = directory.absolute()
    while not existing.exists():
        existing = existing.parent
    return shutil.disk_usage(existing).free


async def create_backup(
    dsn: str,
    backup_dir: Path,
    *,
    free_bytes_override: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Dump the database at `dsn` into a new backup in `backup_dir`; return the dump's path.

    Checks pg_dump's version and the free space before writing anything. The metadata's
    row counts and migration head come from the very snapshot pg_dump dumps. With
    BACKUP_SIGNING_KEY set, the metadata carries an HMAC of the dump's bytes.
    """
    started_at = datetime.now(UTC)
    signing_key = configured_key()
    pg_dump = find_pg_tool("pg_dump")
    dump_version = tool_version(pg_dump)
    conn = await asyncpg.connect(dsn)
    try:
        server = await repository.server_version(conn)
        check_dump_version(pg_dump, dump_version, server)
        size = await repository.database_size(conn)
        check_free_space(backup_dir, size, free_bytes_override)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await repository.export_snapshot(conn)
            metadata = BackupMetadata(
                created_at=started_at,
                database=await repository.current_database(conn),
                database_size_bytes=size,
                migration_head=await migration_head(conn),
                row_counts=await repository.table_row_counts(conn),
                pg_dump_version=dump_version.text,
                server_version=server.text,
            )
            # The exported snapshot lives as long as this transaction: held until pg_dump ends.
            command = [str(pg_dump), *DUMP_OPTIONS, f"--snapshot={snapshot}"]
            return await asyncio.to_thread(
                _write_backup, command, dsn, backup_dir, metadata, signing_key, progress
            )
    finally:
        await conn.close()


def _write_backup(
    command: list[str],
    dsn: str,
    backup_dir: Path,
    metadata: BackupMetadata,
    signing_key: bytes | None,
    progress: Progress | None,
) -> Path:
    """Stream `command`'s dump of `dsn` into a new backup named for `metadata.created_at`."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    target, partial, fd = claim_name(backup_dir, metadata.created_at)
    sidecars = BackupFile(target, metadata.created_at, 0)
    url, env = tool_connection(dsn)
    try:
        with os.fdopen(fd, "wb") as out:
            command = [*command, f"--dbname={url}"]
            streamed = _stream_dump(command, env, out, signing_key, progress)
            out.flush()
            os.fsync(out.fileno())
        _write_durably(sidecars.checksum_path, f"{streamed.sha256}  {target.name}\n")
        final = replace(
            metadata,
            dump_bytes=streamed.dump_bytes,
            size_bytes=streamed.size_bytes,
            hmac_sha256=streamed.hmac_sha256,
        )
        _write_durably(sidecars.metadata_path, final.to_json())
        os.replace(partial, target)  # last: the dump appears only with its sidecars in place
    except BaseException:
        for path in (partial, sidecars.checksum_path, sidecars.metadata_path):
            path.unlink(missing_ok=True)
        raise
    _fsync_directory(backup_dir)
    return target


def _stream_dump(
    command: list[str],
    env: dict[str, str],
    out: IO[bytes],
    signing_key: bytes | None,
    progress: Progress | None,
) -> StreamedDump:
    """Run pg_dump, gzip its output into `out` and hash (and sign) what is written, in one pass.

    zlib and hashlib release the GIL, so compressing here runs alongside pg_dump as
    `pg_dump | gzip` would. The dump passes restore's meta-command scan as it streams: a
    backup that restore would refuse is not written at all.
    """
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
    digest = hashlib.sha256()
    signer = new_signer(signing_key) if signing_key is not None else None
    scanner = DumpScanner()
    dumped = written = 0

    def emit(data: bytes) -> None:
        nonlocal written
        if data:
            digest.update(data)
            if signer is not None:
                signer.update(data)
            out.write(data)
            written += len(data)

    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=env)
        assert process.stdout is not None
        try:
            while chunk := process.stdout.read(CHUNK):
                dumped += len(chunk)
                scanner.feed(chunk)
                emit(compressor.compress(chunk))
                if progress is not None:
                    progress(dumped, written)
            emit(compressor.flush())
        except UnsafeDump as error:
            process.kill()
            raise _refused_by_restore(error) from None
        except BaseException:
            process.kill()
            raise
        finally:
            process.stdout.close()
            process.wait()
        if process.returncode != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            raise BackupError(f"pg_dump failed (exit {process.returncode}): {message}")
    try:
        scanner.finish()
    except UnsafeDump as error:
        raise _refused_by_restore(error) from None
    signature = signer.hexdigest() if signer is not None else None
    return StreamedDump(digest.hexdigest(), signature, dumped, written)


def _refused_by_restore(error: UnsafeDump) -> BackupError:
    return BackupError(f"pg_dump wrote a dump that restore would refuse: {error}")


def _write_durably(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _fsync_directory(directory: Path) -> None:
    """Make renames in `directory` durable: a rename lives in the directory's own data."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
