"""Opaque keyset cursors over (createdAt, id), newest first."""

import base64
import uuid
from datetime import UTC, datetime

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
    malformed = "cursor is malformed; pass back a next_cursor you were given"
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, row_id = raw.split("|")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise InvalidCursor(malformed)
        # In UTC, as we issue them: an offset that moves the moment out of the calendar's
        # range (0001-01-01T00:00+23:59) is refused here, not by the database driver.
        return moment.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError, OverflowError) as error:
        raise InvalidCursor(malformed) from error
