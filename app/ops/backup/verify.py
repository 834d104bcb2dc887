"""`vidgen backup status`: is each backup whole and ours, and how old is it.

Whole: its checksum, a full gzip test. Ours: its HMAC when BACKUP_SIGNING_KEY is set, and no
psql meta-command in the dump (dump_scan.py). A backup is valid when restore would take it.
"""

import hashlib
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from app.ops.backup.dump_scan import DumpScanner, UnsafeDump
from app.ops.backup.files import (
    BackupFile,
    BackupMetadata,
    list_backups,
    read_expected_checksum,
    read_metadata,
)
from app.ops.backup.gzip_stream import CHUNK, GzipInflater
from app.ops.backup.signing import configured_key, new_signer, signature_matches


class ChecksumState(StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    MISSING = "missing"


class SignatureState(StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    MISSING = "missing"
    UNCHECKED = "unchecked"  # BACKUP_SIGNING_KEY is not set


@dataclass(frozen=True)
class BackupInfo:
    """A backup after reading it whole: checksum, signature, gzip integrity, scan, metadata."""

    path: Path
    created_at: datetime
    size_bytes: int
    sha256: str  # of the bytes read: restore commits only if it fed psql these very bytes
    checksum: ChecksumState
    signature: SignatureState
    gzip_error: str | None
    unsafe: str | None  # what psql would run besides SQL (dump_scan.py), if anything
    metadata: BackupMetadata | None

    @property
    def valid(self) -> bool:
        # Metadata only informs; the dump restores without it, unless it must carry the HMAC.
        return (
            self.checksum is ChecksumState.OK
            and self.signature in (SignatureState.OK, SignatureState.UNCHECKED)
            and self.gzip_error is None
            and self.unsafe is None
        )

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or datetime.now(UTC)) - self.created_at

    def problems(self) -> list[str]:
        found = []
        if self.checksum is ChecksumState.MISMATCH:
            found.append("checksum mismatch: the file changed after it was written")
        elif self.checksum is ChecksumState.MISSING:
            found.append(f"checksum file missing or unreadable ({self.path.name}.sha256)")
        if self.signature is SignatureState.MISMATCH:
            found.append(
                "signature mismatch: the dump is not what BACKUP_SIGNING_KEY signed (it was "
                "altered, or signed with another key)"
            )
        elif self.signature is SignatureState.MISSING:
            found.append(
                f"signature missing: BACKUP_SIGNING_KEY is set but {self.path.name}.json holds "
                "no HMAC (made without the key?)"
            )
        if self.gzip_error is not None:
            found.append(f"gzip integrity: {self.gzip_error}")
        if self.unsafe is not None:
            found.append(self.unsafe)
        if self.metadata is None:
            found.append(f"metadata missing or unreadable ({self.path.name}.json)")
        return found


class _DumpChecker:
    """Inflates a gzip stream fed in pieces, keeping nothing: is it whole, is it only SQL."""

    def __init__(self) -> None:
        self._inflater = GzipInflater()
        self._scanner: DumpScanner | None = DumpScanner()
        self.gzip_error: str | None = None
        self.unsafe: str | None = None

    def feed(self, data: bytes) -> None:
        if self.gzip_error is not None:
            return
        try:
            for inflated in self._inflater.feed(data):
                self._scan(inflated)
        except zlib.error as error:
            self.gzip_error = f"corrupt ({error})"

    def finish(self) -> None:
        if self.gzip_error is None and not self._inflater.ended:
            self.gzip_error = "truncated (the gzip stream ends early)"
        if self.gzip_error is None and self._scanner is not None:
            self._scan(None)

    def _scan(self, inflated: bytes | None) -> None:
        """Scan the next piece of the dump, or its end (None); stop at the first finding."""
        if self._scanner is None:
            return
        try:
            if inflated is None:
                self._scanner.finish()
            else:
                self._scanner.feed(inflated)
        except UnsafeDump as error:
            self.unsafe, self._scanner = str(error), None


def verify_backup(backup: BackupFile, signing_key: bytes | None) -> BackupInfo:
    """Read the dump once: sha256, HMAC (with a `signing_key`), full gzip test, scan.

    The sha256 is checked against the `.sha256` sidecar, the HMAC against the metadata's.
    """
    digest = hashlib.sha256()
    signer = new_signer(signing_key) if signing_key is not None else None
    checker = _DumpChecker()
    with open(backup.path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if signer is not None:
                signer.update(chunk)
            checker.feed(chunk)
    checker.finish()
    expected = read_expected_checksum(backup)
    if expected is None:
        checksum = ChecksumState.MISSING
    else:
        checksum = ChecksumState.OK if digest.hexdigest() == expected else ChecksumState.MISMATCH
    metadata = read_metadata(backup)
    recorded = metadata.hmac_sha256 if metadata is not None else None
    if signer is None:
        signature = SignatureState.UNCHECKED
    elif recorded is None:
        signature = SignatureState.MISSING
    else:
        matches = signature_matches(recorded, signer.hexdigest())
        signature = SignatureState.OK if matches else SignatureState.MISMATCH
    return BackupInfo(
        path=backup.path,
        created_at=backup.created_at,
        size_bytes=backup.path.stat().st_size,
        sha256=digest.hexdigest(),
        checksum=checksum,
        signature=signature,
        gzip_error=checker.gzip_error,
        unsafe=checker.unsafe,
        metadata=metadata,
    )


def backup_statuses(backup_dir: Path) -> list[BackupInfo]:
    """Every backup in `backup_dir`, verified, newest first."""
    signing_key = configured_key()
    return [verify_backup(backup, signing_key) for backup in list_backups(backup_dir)]


def latest_valid_backup(backup_dir: Path, max_age: timedelta) -> BackupInfo | None:
    """The newest backup at most `max_age` old that verifies, or None.

    Verifies newest first and stops at the first good one, so a corrupt latest backup
    falls back to the one before it, and older backups are never read.
    """
    cutoff, signing_key = datetime.now(UTC) - max_age, configured_key()
    for backup in list_backups(backup_dir):
        if backup.created_at < cutoff:
            return None
        if (info := verify_backup(backup, signing_key)).valid:
            return info
    return None
