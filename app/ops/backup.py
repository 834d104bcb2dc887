"""Logical backups: `pg_dump` ➜ gzip ➜ `BACKUP_DIR/backup_YYYYMMDD_HHMMSS.sql.gz` (DESIGN §8).

Each backup is three files: the dump, `<dump>.sha256` (sha256sum format) and `<dump>.json`
(metadata). A dump only appears under its final name once it is complete and fsynced, and
after its sidecars, so a visible dump is never half written. The dump is plain SQL made
with `--clean --if-exists`, so it restores over an existing database in one transaction.
"""

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from app.ops.migrate import read_history

NAME_PATTERN = re.compile(r"^backup_(\d{8}_\d{6})(?:_(\d+))?\.sql\.gz$")
STAMP_FORMAT = "%Y%m%d_%H%M%S"
PG_LIB_DIR = Path("/usr/lib/postgresql")
# Free space wanted in BACKUP_DIR, as a multiple of the database's on-disk size.
FREE_SPACE_FACTOR = 2
# Compression is the pipeline's bottleneck (pg_dump itself streams several times faster).
# Level 3 takes about half the time of gzip's default 6 for a few percent more bytes.
GZIP_LEVEL = 3
GZIP_WBITS = 31  # zlib's gzip container: header, CRC32 and length trailer
CHUNK = 1 << 20
# Bounds what one feed of compressed bytes may inflate to while only testing integrity.
INFLATE_LIMIT = 8 * CHUNK
DUMP_OPTIONS = ("--format=plain", "--clean", "--if-exists", "--no-owner", "--no-privileges")
FORMAT_VERSION = 1

Progress = Callable[[int, int], None]
"""Called with (bytes read from pg_dump, compressed bytes written) as a backup streams."""


class BackupError(Exception):
    """A backup, restore or check that must stop; the message says why and what to do."""


class ChecksumState(StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    MISSING = "missing"


@dataclass(frozen=True)
class BackupMetadata:
    created_at: datetime
    database: str
    database_size_bytes: int
    migration_head: str | None
    row_counts: dict[str, int]
    pg_dump_version: str
    server_version: str
    dump_bytes: int = 0
    size_bytes: int = 0

    def to_json(self) -> str:
        fields = asdict(self) | {"created_at": self.created_at.isoformat()}
        return json.dumps({"format": FORMAT_VERSION, **fields}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "BackupMetadata":
        data: dict[str, Any] = json.loads(text)
        data.pop("format", None)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        return cls(**data)


@dataclass(frozen=True)
class BackupFile:
    """A file in BACKUP_DIR named like a backup; nothing about it is verified yet."""

    path: Path
    created_at: datetime
    sequence: int  # 0, or n for the n-th backup started within the same second

    @property
    def checksum_path(self) -> Path:
        return self.path.with_name(self.path.name + ".sha256")

    @property
    def metadata_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    @property
    def all_paths(self) -> tuple[Path, Path, Path]:
        return self.path, self.checksum_path, self.metadata_path

    @classmethod
    def parse(cls, path: Path) -> "BackupFile | None":
        match = NAME_PATTERN.match(path.name)
        if match is None:
            return None
        created_at = datetime.strptime(match[1], STAMP_FORMAT).replace(tzinfo=UTC)
        return cls(path, created_at, int(match[2] or 0))


@dataclass(frozen=True)
class BackupInfo:
    """A backup after reading it whole: checksum, gzip integrity and metadata."""

    path: Path
    created_at: datetime
    size_bytes: int
    checksum: ChecksumState
    gzip_error: str | None
    metadata: BackupMetadata | None

    @property
    def valid(self) -> bool:
        # Metadata only informs; the dump restores without it.
        return self.checksum is ChecksumState.OK and self.gzip_error is None

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or datetime.now(UTC)) - self.created_at

    def problems(self) -> list[str]:
        found = []
        if self.checksum is ChecksumState.MISMATCH:
            found.append("checksum mismatch: the file changed after it was written")
        elif self.checksum is ChecksumState.MISSING:
            found.append(f"checksum file missing or unreadable ({self.path.name}.sha256)")
        if self.gzip_error is not None:
            found.append(f"gzip integrity: {self.gzip_error}")
        if self.metadata is None:
            found.append(f"metadata missing or unreadable ({self.path.name}.json)")
        return found


@dataclass(frozen=True)
class PgVersion:
    text: str  # as the tool or server reports it, e.g. "15.10"
    major: int

    @classmethod
    def parse(cls, text: str) -> "PgVersion":
        match = re.search(r"(\d+)(?:\.(\d+))?", text)
        if match is None:
            raise BackupError(f"cannot read a PostgreSQL version from {text!r}")
        return cls(match[0], int(match[1]))


# --- units ------------------------------------------------------------------------------


def human_bytes(count: float) -> str:
    if count < 1024:
        return f"{int(count)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        count /= 1024
        if count < 1024 or unit == "TiB":
            break
    return f"{count:.1f} {unit}"


def human_age(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


# --- PostgreSQL client tools ------------------------------------------------------------


def find_pg_tool(name: str) -> Path:
    """`$PG_BIN_DIR/<name>`, else the newest Debian-packaged one, else the one on PATH.

    Debian installs each major under /usr/lib/postgresql/<major>/bin and PATH gets a
    wrapper that may pick an older one; pg_dump must be at least the server's major.
    """
    if (env := os.environ.get("PG_BIN_DIR")) and (Path(env) / name).is_file():
        return Path(env) / name
    packaged = [
        (int(d.parent.name), d / name)
        for d in PG_LIB_DIR.glob("*/bin")
        if d.parent.name.isdigit() and (d / name).is_file()
    ]
    if packaged:
        return max(packaged)[1]
    if on_path := shutil.which(name):
        return Path(on_path)
    raise BackupError(
        f"{name} not found; install the PostgreSQL client (apt-get install postgresql-client) "
        "or set PG_BIN_DIR"
    )


def tool_version(tool: Path) -> PgVersion:
    result = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{tool} --version failed: {result.stderr.strip()}")
    # "pg_dump (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)": the number after the name.
    return PgVersion.parse(result.stdout.split(")", 1)[-1])


def check_dump_version(pg_dump: Path, dump: PgVersion, server: PgVersion) -> None:
    """pg_dump refuses (or worse, misreads) a server of a newer major; say what to install."""
    if dump.major < server.major:
        raise BackupError(
            f"{pg_dump} is version {dump.text}, older than the server (PostgreSQL "
            f"{server.text}); pg_dump must be at least the server's major version. Install "
            f"the PostgreSQL {server.major} client, e.g. apt-get install "
            f"postgresql-client-{server.major} (found automatically under "
            f"{PG_LIB_DIR}/{server.major}/bin), or set PG_BIN_DIR to its bin directory."
        )


def tool_connection(dsn: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and an environment carrying it as PGPASSWORD.

    Keeps the password out of the process list, where command lines are world-readable.
    """
    parts = urlsplit(dsn)
    env = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}
    if parts.password is None:
        return dsn, env
    env["PGPASSWORD"] = unquote(parts.password)
    userinfo, hostinfo = parts.netloc.rsplit("@", 1)
    netloc = f"{userinfo.split(':', 1)[0]}@{hostinfo}"
    return urlunsplit(parts._replace(netloc=netloc)), env


def describe_target(dsn: str) -> str:
    parts = urlsplit(dsn)
    database = unquote(parts.path.lstrip("/")) or "(default database)"
    host = parts.hostname or "local socket"
    return f'database "{database}" on {host}:{parts.port or 5432}'


# --- reading the database ---------------------------------------------------------------

USER_TABLES = """
SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END,
       format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1
"""


async def table_row_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Exact row counts of every user table, keyed by name (schema-qualified unless public)."""
    counts: dict[str, int] = {}
    for name, quoted in await conn.fetch(USER_TABLES):
        counts[name] = await conn.fetchval(f"SELECT count(*) FROM {quoted}")
    return counts


async def current_row_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return await table_row_counts(conn)
    finally:
        await conn.close()


async def migration_head(conn: asyncpg.Connection) -> str | None:
    applied = [row for row in await read_history(conn) if row.is_applied]
    return applied[-1].migration_name if applied else None


async def server_version(conn: asyncpg.Connection) -> PgVersion:
    number = int(await conn.fetchval("SHOW server_version_num"))  # e.g. 150010, 90624
    text = await conn.fetchval("SHOW server_version")
    return PgVersion(text.split()[0], number // 10000)


# --- create -----------------------------------------------------------------------------


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
    row counts and migration head come from the very snapshot pg_dump dumps.
    """
    started_at = datetime.now(UTC)
    pg_dump = find_pg_tool("pg_dump")
    dump_version = tool_version(pg_dump)
    conn = await asyncpg.connect(dsn)
    try:
        server = await server_version(conn)
        check_dump_version(pg_dump, dump_version, server)
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
        check_free_space(backup_dir, size, free_bytes_override)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            metadata = BackupMetadata(
                created_at=started_at,
                database=await conn.fetchval("SELECT current_database()"),
                database_size_bytes=size,
                migration_head=await migration_head(conn),
                row_counts=await table_row_counts(conn),
                pg_dump_version=dump_version.text,
                server_version=server.text,
            )
            # The exported snapshot lives as long as this transaction: held until pg_dump ends.
            command = [str(pg_dump), *DUMP_OPTIONS, f"--snapshot={snapshot}"]
            return await asyncio.to_thread(
                _write_backup, command, dsn, backup_dir, metadata, progress
            )
    finally:
        await conn.close()


def _write_backup(
    command: list[str],
    dsn: str,
    backup_dir: Path,
    metadata: BackupMetadata,
    progress: Progress | None,
) -> Path:
    """Stream `command`'s dump of `dsn` into a new backup named for `metadata.created_at`."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    target, partial, fd = _claim_name(backup_dir, metadata.created_at)
    sidecars = BackupFile(target, metadata.created_at, 0)
    url, env = tool_connection(dsn)
    try:
        with os.fdopen(fd, "wb") as out:
            command = [*command, f"--dbname={url}"]
            digest, dump_bytes, size = _stream_dump(command, env, out, progress)
            out.flush()
            os.fsync(out.fileno())
        _write_durably(sidecars.checksum_path, f"{digest}  {target.name}\n")
        final = replace(metadata, dump_bytes=dump_bytes, size_bytes=size)
        _write_durably(sidecars.metadata_path, final.to_json())
        os.replace(partial, target)  # last: the dump appears only with its sidecars in place
    except BaseException:
        for path in (partial, sidecars.checksum_path, sidecars.metadata_path):
            path.unlink(missing_ok=True)
        raise
    _fsync_directory(backup_dir)
    return target


def _claim_name(backup_dir: Path, created_at: datetime) -> tuple[Path, Path, int]:
    """A free backup name and its partial file, created exclusively so no run clobbers another.

    Two backups started within the same second get `_1`, `_2`… suffixes, which sort after.
    """
    stamp = created_at.strftime(STAMP_FORMAT)
    for sequence in itertools.count():
        name = f"backup_{stamp}{f'_{sequence}' if sequence else ''}.sql.gz"
        target, partial = backup_dir / name, backup_dir / f".{name}.partial"
        if target.exists():
            continue
        try:
            # 0600: the dump holds every user's email and key hash.
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        return target, partial, fd
    raise AssertionError("unreachable")


def _stream_dump(
    command: list[str], env: dict[str, str], out: IO[bytes], progress: Progress | None
) -> tuple[str, int, int]:
    """Run pg_dump, gzip its output into `out` and hash what is written, in one pass.

    Returns (sha256 of the written bytes, bytes dumped, bytes written). zlib and hashlib
    release the GIL, so compressing here runs alongside pg_dump as `pg_dump | gzip` would.
    """
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
    digest = hashlib.sha256()
    dumped = written = 0

    def emit(data: bytes) -> None:
        nonlocal written
        if data:
            digest.update(data)
            out.write(data)
            written += len(data)

    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=env)
        assert process.stdout is not None
        try:
            while chunk := process.stdout.read(CHUNK):
                dumped += len(chunk)
                emit(compressor.compress(chunk))
                if progress is not None:
                    progress(dumped, written)
            emit(compressor.flush())
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
    return digest.hexdigest(), dumped, written


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


# --- verify -----------------------------------------------------------------------------


def list_backups(backup_dir: Path) -> list[BackupFile]:
    """Files named like backups, newest first (by the UTC time in their names)."""
    if not backup_dir.is_dir():
        return []
    found = [b for p in backup_dir.iterdir() if (b := BackupFile.parse(p)) and p.is_file()]
    return sorted(found, key=lambda b: (b.created_at, b.sequence), reverse=True)


class _GzipChecker:
    """Inflates a gzip stream fed in pieces, keeping nothing, to prove it whole.

    zlib checks each member's CRC32 and length trailer; a stream that just stops is caught
    by `finish`. Concatenated members (what `cat a.gz b.gz` makes) are valid gzip too.
    """

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(GZIP_WBITS)
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        try:
            while data and self.error is None:
                if self._inflater.eof:
                    self._inflater = zlib.decompressobj(GZIP_WBITS)
                self._inflater.decompress(data, INFLATE_LIMIT)
                inflater = self._inflater
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
        except zlib.error as error:
            self.error = f"corrupt ({error})"

    def finish(self) -> str | None:
        if self.error is None and not self._inflater.eof:
            self.error = "truncated (the gzip stream ends early)"
        return self.error


def read_expected_checksum(backup: BackupFile) -> str | None:
    try:
        first_word = backup.checksum_path.read_text(encoding="utf-8").split(maxsplit=1)[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return None
    return first_word.lower() if re.fullmatch(r"[0-9a-fA-F]{64}", first_word) else None


def read_metadata(backup: BackupFile) -> BackupMetadata | None:
    try:
        return BackupMetadata.from_json(backup.metadata_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def verify_backup(backup: BackupFile) -> BackupInfo:
    """Read the dump once: its sha256 against the sidecar, and a full gzip decompress test."""
    digest = hashlib.sha256()
    checker = _GzipChecker()
    with open(backup.path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            checker.feed(chunk)
    expected = read_expected_checksum(backup)
    if expected is None:
        checksum = ChecksumState.MISSING
    else:
        checksum = ChecksumState.OK if digest.hexdigest() == expected else ChecksumState.MISMATCH
    return BackupInfo(
        path=backup.path,
        created_at=backup.created_at,
        size_bytes=backup.path.stat().st_size,
        checksum=checksum,
        gzip_error=checker.finish(),
        metadata=read_metadata(backup),
    )


def backup_statuses(backup_dir: Path) -> list[BackupInfo]:
    """Every backup in `backup_dir`, verified, newest first."""
    return [verify_backup(backup) for backup in list_backups(backup_dir)]


def latest_valid_backup(backup_dir: Path, max_age: timedelta) -> BackupInfo | None:
    """The newest backup at most `max_age` old that verifies, or None.

    Verifies newest first and stops at the first good one, so a corrupt latest backup
    falls back to the one before it, and older backups are never read.
    """
    cutoff = datetime.now(UTC) - max_age
    for backup in list_backups(backup_dir):
        if backup.created_at < cutoff:
            return None
        if (info := verify_backup(backup)).valid:
            return info
    return None


def resolve_backup_path(file: Path, backup_dir: Path) -> BackupFile:
    """`file` as given, or as a name inside `backup_dir`; it must be named like a backup."""
    path = file if file.exists() or file.is_absolute() else backup_dir / file
    if not path.is_file():
        raise BackupError(f"backup not found: {file} (also looked in {backup_dir})")
    backup = BackupFile.parse(path)
    if backup is None:
        raise BackupError(f"{path.name} is not named like a backup (backup_YYYYMMDD_HHMMSS.sql.gz)")
    return backup


# --- restore ----------------------------------------------------------------------------


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
        await conn.execute("ANALYZE")  # a dump carries no planner statistics
    finally:
        await conn.close()
    return info


def _inflate(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        inflater = zlib.decompressobj(GZIP_WBITS)
        while chunk := handle.read(CHUNK):
            while chunk:
                if inflater.eof:
                    inflater = zlib.decompressobj(GZIP_WBITS)
                yield inflater.decompress(chunk, INFLATE_LIMIT)
                chunk = inflater.unused_data if inflater.eof else inflater.unconsumed_tail


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
            process.stdin.write(b"BEGIN;\n")
            for data in _inflate(dump):
                process.stdin.write(data)
            process.stdin.write(b"\nCOMMIT;\n")
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


# --- prune ------------------------------------------------------------------------------


def prune_backups(backup_dir: Path, keep: int) -> list[Path]:
    """Delete all but the `keep` newest backups with their sidecars; return what was deleted."""
    if keep < 1:
        raise ValueError("keep at least one backup")
    removed = []
    for backup in list_backups(backup_dir)[keep:]:
        for path in backup.all_paths:
            if path.exists():
                path.unlink()
                removed.append(path)
    return removed
