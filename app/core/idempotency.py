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
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import RowMapping, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db_errors import LOCK_NOT_AVAILABLE, sqlstate
from app.core.errors import AppError
from app.core.sql import Statement

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


async def require_idempotency_key(
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


# The claim bounds its own wait for a concurrent holder of the key (`lock_timeout`, local
# to the transaction) in the same round trip; the caller's next statement lifts the bound.
CLAIM = Statement("""
    WITH bounded AS (SELECT set_config('lock_timeout', :wait_ms, true))
    INSERT INTO "idempotencyRequests" ("scope", "key", "method", "path", "fingerprint")
    SELECT :scope, :key, :method, :path, :fingerprint FROM bounded
    ON CONFLICT ("scope", "key") DO NOTHING
    RETURNING "id"
""")
UNBOUND_LOCKS = text("SET LOCAL lock_timeout = 0")
STORED = Statement("""
    SELECT "method", "path", "fingerprint", "responseStatus", "responseBody"
    FROM "idempotencyRequests" WHERE "scope" = :scope AND "key" = :key
""")
RECORD = text("""
    UPDATE "idempotencyRequests"
    SET "responseStatus" = :status, "responseBody" = :body WHERE "id" = :id
""")


@dataclass(frozen=True)
class KeyedRequest:
    """A write request as its Idempotency-Key binds it: who, which key, and what was asked."""

    scope: str
    key: str
    method: str
    path: str
    fingerprint: str

    @classmethod
    def of(cls, request: Request, *, scope: str, key: str, body: BaseModel) -> "KeyedRequest":
        method, path = request.method, request.url.path
        return cls(scope, key, method, path, fingerprint(method, path, body))

    def claim_params(self, wait_s: float) -> dict[str, str]:
        return {
            "scope": self.scope,
            "key": self.key,
            "method": self.method,
            "path": self.path,
            "fingerprint": self.fingerprint,
            "wait_ms": str(int(wait_s * 1000)),
        }

    def replay(self, stored: asyncpg.Record | RowMapping) -> Outcome:
        """The stored outcome, if the key was first used for this very request."""
        if (stored["method"], stored["path"], stored["fingerprint"]) != (
            self.method,
            self.path,
            self.fingerprint,
        ):
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request; "
                "use a new key for a new request"
            )
        return Outcome(stored["responseStatus"], stored["responseBody"], replayed=True)


def _in_flight() -> IdempotencyKeyInFlight:
    return IdempotencyKeyInFlight(
        "a request with this Idempotency-Key is still being processed; retry shortly",
        headers={"Retry-After": "1"},
    )


async def claim_on_driver(
    driver: asyncpg.Connection, keyed: KeyedRequest, wait_s: float
) -> uuid.UUID | Outcome:
    """Claim the key as the first statement of the driver's transaction: the claim's id, or
    the committed outcome of the request that used the key first. The caller stores its
    response in the claim before commit and lifts the lock bound (see CLAIM)."""
    try:
        claim: uuid.UUID | None = await CLAIM.fetchval(driver, **keyed.claim_params(wait_s))
    except asyncpg.LockNotAvailableError as error:
        raise _in_flight() from error
    if claim is not None:
        return claim
    stored = await STORED.fetchrow(driver, scope=keyed.scope, key=keyed.key)
    assert stored is not None  # the conflicting row is committed: we waited for it
    return keyed.replay(stored)


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
    keyed = KeyedRequest.of(request, scope=scope, key=key, body=body)
    wait_s: float = request.app.state.settings.idempotency_wait_s
    try:
        result = await session.execute(CLAIM.text, keyed.claim_params(wait_s))
        claim = result.scalar_one_or_none()
    except DBAPIError as error:
        if sqlstate(error) == LOCK_NOT_AVAILABLE:
            raise _in_flight() from error
        raise
    await session.execute(UNBOUND_LOCKS)

    if claim is None:
        stored = await session.execute(STORED.text, {"scope": scope, "key": key})
        return keyed.replay(stored.mappings().one())

    status, result_body = await operation(keyed.fingerprint)
    body_text = result_body.model_dump_json()
    await session.execute(RECORD, {"id": claim, "status": status, "body": body_text})
    return Outcome(status, body_text, replayed=False)
