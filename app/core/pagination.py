"""Opaque keyset cursors over (createdAt, id), newest first."""

import base64
import uuid
from datetime import datetime

from app.core.errors import AppError

Position = tuple[datetime, uuid.UUID]


class InvalidCursor(AppError):
    status, code, title = 400, "invalid_cursor", "Invalid cursor"


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, row_id = raw.split("|")
        position = (datetime.fromisoformat(created_at), uuid.UUID(row_id))
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidCursor(
            "cursor is malformed; pass back a next_cursor you were given"
        ) from error
    if position[0].tzinfo is None:
        raise InvalidCursor("cursor is malformed; pass back a next_cursor you were given")
    return position
