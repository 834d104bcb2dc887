"""Keyset cursors: anything that is not a cursor we issued is a 400, never a 500."""

import base64
import uuid

import httpx
import pytest

from app.core.pagination import InvalidCursor, decode_cursor, encode_cursor
from tests.support.factories import create_user


def cursor_of(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "raw",
    [
        f"0001-01-01T00:00:00+23:59|{uuid.uuid4()}",  # before year 1 in UTC
        f"9999-12-31T23:59:59-23:59|{uuid.uuid4()}",  # after year 9999 in UTC
        f"2026-01-01T00:00:00|{uuid.uuid4()}",  # no offset
        "2026-01-01T00:00:00+00:00|not-a-uuid",
        "no separator",
    ],
)
async def test_a_crafted_cursor_is_a_400(client: httpx.AsyncClient, raw: str) -> None:
    user = await create_user(client)
    for path in ("/api/videos", "/api/credits"):
        answer = await client.get(path, params={"cursor": cursor_of(raw)}, headers=user.auth)
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "invalid_cursor"
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor_of(raw))


def test_a_cursor_we_issue_decodes_to_the_same_position_in_utc() -> None:
    from datetime import UTC, datetime

    moment, row_id = datetime(2026, 11, 30, 12, 0, tzinfo=UTC), uuid.uuid4()
    assert decode_cursor(encode_cursor(moment, row_id)) == (moment, row_id)
