"""A backup on disk: its name, its checksum and metadata sidecars, listing and pruning."""

import itertools
import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.ops.backup.errors import BackupError

NAME_PATTERN = re.compile(r"^backup_(\d{8}_\d{6})(?:_(\d+))?\.sql\.gz$")
STAMP_FORMAT = "%Y%m%d_%H%M%S"
FORMAT_VERSION = 1


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
    # HMAC-SHA256 of the .sql.gz bytes under BACKUP_SIGNING_KEY (signing.py); None unsigned.
    hmac_sha256: str | None = None

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


def claim_name(backup_dir: Path, created_at: datetime) -> tuple[Path, Path, int]:
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


def list_backups(backup_dir: Path) -> list[BackupFile]:
    """Files named like backups, newest first (by the UTC time in their names)."""
    if not backup_dir.is_dir():
        return []
    found = [b for p in backup_dir.iterdir() if (b := BackupFile.parse(p)) and p.is_file()]
    return sorted(found, key=lambda b: (b.created_at, b.sequence), reverse=True)


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


def resolve_backup_path(file: Path, backup_dir: Path) -> BackupFile:
    """`file` as given, or as a name inside `backup_dir`; it must be named like a backup."""
    path = file if file.exists() or file.is_absolute() else backup_dir / file
    if not path.is_file():
        raise BackupError(f"backup not found: {file} (also looked in {backup_dir})")
    backup = BackupFile.parse(path)
    if backup is None:
        raise BackupError(f"{path.name} is not named like a backup (backup_YYYYMMDD_HHMMSS.sql.gz)")
    return backup


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
