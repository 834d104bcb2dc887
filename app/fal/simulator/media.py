"""The bytes the simulator serves: a real MP4 for every result, and files clients upload.

`sample.mp4` is a 2-second 160x90 H.264 clip (ftyp/moov/mdat, faststart) made once with
ffmpeg and committed, so whoever downloads a "generated" video gets something players and
probes accept, without the simulator depending on ffmpeg.
"""

import secrets
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

SAMPLE_PATH = Path(__file__).with_name("sample.mp4")


@dataclass(frozen=True)
class SampleVideo:
    data: bytes
    content_type: str = "video/mp4"
    file_name: str = "output.mp4"

    @property
    def size(self) -> int:
        return len(self.data)


@cache
def sample_video() -> SampleVideo:
    return SampleVideo(SAMPLE_PATH.read_bytes())


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    content_type: str
    file_name: str
    stored_at: float = field(default_factory=time.time)


@dataclass
class UploadStore:
    """In-memory stand-in for Fal's CDN: upload tokens issued, and the files put under them.

    Memory is enough: uploads only need to outlive the request that references them.
    """

    tokens: set[str] = field(default_factory=set)
    files: dict[str, StoredFile] = field(default_factory=dict)

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return token

    def put(self, data: bytes, content_type: str, file_name: str | None) -> str:
        """Store the bytes and return their path under `/files/` (the CDN key)."""
        name = _safe_name(file_name) or "upload.bin"
        key = f"uploads/{secrets.token_hex(8)}/{name}"
        self.files[key] = StoredFile(data, content_type, name)
        return key

    def clear(self) -> None:
        self.tokens.clear()
        self.files.clear()


def _safe_name(file_name: str | None) -> str:
    """Keep a client-chosen name usable as one URL path segment."""
    if not file_name:
        return ""
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in base)[:128]
