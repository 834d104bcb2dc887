"""Idempotency-Key handling (DESIGN §4), reusable by every POST that moves money or makes jobs.

The key is claimed by inserting an `idempotencyRequests` row as the first statement of the
request's transaction; the response is stored in the same row before commit. Hence:
- a concurrent request with the same key blocks on the unique index until the first one
  finishes: it then replays the stored response (or runs, if the first rolled back);
- nothing is bound to a key unless the work committed: a 4xx leaves no trace, so the
  client may fix the cause (e.g. buy credits) and retry with the same key.
"""

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db_errors import LOCK_NOT_AVAILABLE, sqlstate
from app.core.errors import AppError

REPLAY_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


class IdempotencyKeyMissing(AppError):
    status, code, title = 400, "idempotency_key_missing", "Idempotency-Key header required"


class IdempotencyKeyInvalid(AppError):
    status, code, title = 400, "idempotency_key_invalid", "Malformed Idempotency-Key"


class IdempotencyKeyReused(AppError):
    status, code, title = (
        422,
        "idempotency_key_reused",
        "Idempotency-Key reused with another request",
    )


class IdempotencyKeyInFlight(AppError):
    status, code, title = 409, "idempotency_key_in_flight", "Request with this key in progress"


IDEMPOTENCY_ERRORS = (
    IdempotencyKeyMissing,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    IdempotencyKeyInFlight,
)


def require_idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1-255 visible ASCII characters, unique per intended operation",
        ),
    ] = None,
) -> str:
    if idempotency_key is None:
        raise IdempotencyKeyMissing("this endpoint requires an Idempotency-Key header")
    if not 1 <= len(idempotency_key) <= MAX_KEY_LENGTH or not all(
        "!" <= ch <= "~" for ch in idempotency_key
    ):
        raise IdempotencyKeyInvalid("Idempotency-Key must be 1-255 visible ASCII characters")
    return idempotency_key


IdempotencyKey = Annotated[str, Depends(require_idempotency_key)]


def fingerprint(method: str, path: str, body: BaseModel) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
    status: int
    body: str
    replayed: bool

    def response(self) -> Response:
        headers = {REPLAY_HEADER: "true"} if self.replayed else None
        return Response(self.body, self.status, headers, media_type="application/json")


CLAIM = text("""
    INSERT INTO "idempotencyRequests" ("scope", "key", "method", "path", "fingerprint")
    VALUES (:scope, :key, :method, :path, :fingerprint)
    ON CONFLICT ("scope", "key") DO NOTHING
    RETURNING "id"
""")
STORED = text("""
    SELECT "method", "path", "fingerprint", "responseStatus", "responseBody"
    FROM "idempotencyRequests" WHERE "scope" = :scope AND "key" = :key
""")
RECORD = text("""
    UPDATE "idempotencyRequests"
    SET "responseStatus" = :status, "responseBody" = :body WHERE "id" = :id
""")


async def run_once(
    session: AsyncSession,
    request: Request,
    *,
    scope: str,
    key: str,
    body: BaseModel,
    operation: Callable[[str], Awaitable[tuple[int, BaseModel]]],
) -> Outcome:
    """Run `operation(fingerprint)` once per (scope, key); replay its committed outcome after.

    Must be the first thing in the request's transaction, so the claim is held until commit.
    """
    request_print = fingerprint(request.method, request.url.path, body)
    params = {"scope": scope, "key": key, "method": request.method, "path": request.url.path}
    # How long to wait for an in-flight request holding the same key before answering 409.
    wait_ms = int(request.app.state.settings.idempotency_wait_s * 1000)
    await session.execute(text(f"SET LOCAL lock_timeout = {wait_ms}"))
    try:
        claim = (
            await session.execute(CLAIM, {**params, "fingerprint": request_print})
        ).scalar_one_or_none()
    except DBAPIError as error:
        if sqlstate(error) == LOCK_NOT_AVAILABLE:
            raise IdempotencyKeyInFlight(
                "a request with this Idempotency-Key is still being processed; retry shortly",
                headers={"Retry-After": "1"},
            ) from error
        raise
    await session.execute(text("SET LOCAL lock_timeout = 0"))

    if claim is None:
        stored = (await session.execute(STORED, {"scope": scope, "key": key})).one()
        if (stored.method, stored.path, stored.fingerprint) != (
            request.method,
            request.url.path,
            request_print,
        ):
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request; "
                "use a new key for a new request"
            )
        return Outcome(stored.responseStatus, stored.responseBody, replayed=True)

    status, result = await operation(request_print)
    body_text = result.model_dump_json()
    await session.execute(RECORD, {"id": claim, "status": status, "body": body_text})
    return Outcome(status, body_text, replayed=False)
