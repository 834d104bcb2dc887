"""A remote file streamed to a staging file: constant memory, hashed on the way."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import httpx


class DownloadFailed(Exception):
    """Worth retrying: the network, a timeout, or the server's error."""


class NotAVideo(Exception):
    """Never worth retrying: the bytes are not a video we can serve, or too many of them."""


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    content_type: str


# The containers we keep, and the extension a stored file of each gets.
VIDEO_EXTENSIONS = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm"}


def sniff_video(head: bytes) -> str | None:
    """The container the bytes are in, from their first bytes (not the server's word)."""
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:10] == b"qt" else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


async def download(client: httpx.AsyncClient, url: str, target: Path, max_bytes: int) -> Downloaded:
    """Stream `url` into `target`; the caller removes `target` when it is not published."""
    digest, size, head = hashlib.sha256(), 0, b""
    try:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise DownloadFailed(f"GET {url} answered {response.status_code}")
            with target.open("wb") as out:
                # As the bytes arrive (socket-sized pieces): nothing waits to fill a buffer,
                # and memory stays bounded whatever the file's size.
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise NotAVideo(f"the output is over MEDIA_MAX_BYTES ({max_bytes})")
                    if len(head) < 16:
                        head += chunk[:16]
                    digest.update(chunk)
                    out.write(chunk)
    except httpx.HTTPError as error:
        raise DownloadFailed(f"GET {url} failed: {error!r}") from error
    content_type = sniff_video(head)
    if content_type is None:
        raise NotAVideo("the output is not an MP4, QuickTime or WebM video")
    return Downloaded(target, size, digest.hexdigest(), content_type)
