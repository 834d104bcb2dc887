"""A video's facts (width, height, duration) and a poster frame, read with PyAV, whose
wheel ships FFmpeg's libraries (no system ffmpeg needed). CPU work: run it in a thread."""

import io
from dataclasses import dataclass
from pathlib import Path

import av
from av.error import FFmpegError

from app.media.download import NotAVideo

POSTER_MAX_SIDE = 1280
POSTER_QUALITY = 85


@dataclass(frozen=True)
class VideoFacts:
    width: int
    height: int
    duration_s: float
    poster_jpeg: bytes


def probe(path: Path) -> VideoFacts:
    """Decode the first frame as the poster; NotAVideo when FFmpeg finds no video in it."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise NotAVideo("the output has no video stream")
            stream = container.streams.video[0]
            if container.duration is not None:
                duration_s = container.duration / av.time_base
            elif stream.duration is not None and stream.time_base is not None:
                duration_s = float(stream.duration * stream.time_base)
            else:
                duration_s = 0.0
            frame = next(container.decode(stream), None)
            if frame is None:
                raise NotAVideo("the output has no decodable frame")
            image = frame.to_image()  # type: ignore[no-untyped-call]
            width, height = stream.codec_context.width, stream.codec_context.height
    except FFmpegError as error:
        raise NotAVideo(f"the output is not a readable video: {error}") from error
    image.thumbnail((POSTER_MAX_SIDE, POSTER_MAX_SIDE))
    poster = io.BytesIO()
    image.convert("RGB").save(poster, "JPEG", quality=POSTER_QUALITY)
    return VideoFacts(width, height, round(duration_s, 3), poster.getvalue())
