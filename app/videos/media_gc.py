"""`vidgen media gc`: remove stored files that no row points at, and abandoned staging files.

Only files older than `min_age` go: a copy publishes its files moments before its row
points at them (app/videos/finalise.py), and an upload before its row is inserted.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.media.store import MediaStore
from app.videos import repository, uploads_repository


@dataclass(frozen=True)
class Collected:
    files: int
    bytes_freed: int
    kept: int


async def collect(
    sessions: async_sessionmaker[AsyncSession], store: MediaStore, min_age: timedelta
) -> Collected:
    async with sessions() as session:
        referenced = await repository.referenced_media(session)
        referenced |= await uploads_repository.all_keys(session)
    cutoff = datetime.now(UTC) - min_age
    unreferenced, kept, freed = [], 0, 0
    async for stored in store.objects():
        if stored.key in referenced or stored.modified > cutoff:
            kept += 1
            continue
        unreferenced.append(stored.key)
        freed += stored.size
    await store.delete(unreferenced)
    staged_files, staged_bytes = _remove_stale_staging(store, min_age.total_seconds())
    return Collected(len(unreferenced) + staged_files, freed + staged_bytes, kept)


def _remove_stale_staging(store: MediaStore, older_than_s: float) -> tuple[int, int]:
    """Staging files a crash left behind: (files, bytes) removed."""
    files = freed = 0
    cutoff = time.time() - older_than_s
    for path in store.staging_dir.glob("*.part"):
        stat = path.stat()
        if stat.st_mtime < cutoff:
            path.unlink(missing_ok=True)
            files, freed = files + 1, freed + stat.st_size
    return files, freed
