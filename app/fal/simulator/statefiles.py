"""Small helpers for files in the simulator's state directory (keys, certificates).

Keys are written atomically with their final permissions, under a lock, so concurrent
simulators on one directory agree on a single key instead of each minting their own.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def atomic_write(path: Path, data: bytes, *, mode: int) -> None:
    """Write via a temporary file and rename, so readers never see half a PEM."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


@contextmanager
def exclusive_lock(state_dir: Path, name: str) -> Iterator[None]:
    """Hold an advisory lock on `state_dir/.{name}.lock` for the duration of the block."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / f".{name}.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
