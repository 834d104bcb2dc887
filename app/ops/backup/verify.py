"""`vidgen backup status`: is each backup whole (checksum, full gzip test) and how old is it."""

import hashlib
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from app.ops.backup.files import (
    BackupFile,
    BackupMetadata,
    list_backups,
    read_expected_checksum,
    read_metadata,
)
from app.ops.backup.gzip_stream import CHUNK, GzipInflater


class ChecksumState(StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    MISSING = "missing"


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


class _GzipChecker:
    """Inflates a gzip stream fed in pieces, keeping nothing, to prove it whole."""

    def __init__(self) -> None:
        self._inflater = GzipInflater()
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            for _ in self._inflater.feed(data):
                pass
        except zlib.error as error:
            self.error = f"corrupt ({error})"

    def finish(self) -> str | None:
        if self.error is None and not self._inflater.ended:
            self.error = "truncated (the gzip stream ends early)"
        return self.error


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
