"""Idempotency-Key handling (Stripe / IETF semantics), for every POST that moves money or
makes jobs.

The key is claimed by inserting an `idempotencyRequests` row as the first statement of the
request's transaction; the response is stored in the same row before commit. Hence:
- a concurrent request with the same key blocks on the unique index until the first one
  finishes: it then replays the stored response (or runs, if the first rolled back);
- nothing is bound to a key unless the work committed: a 4xx leaves no trace, so the
  client may fix the cause (e.g. buy credits) and retry with the same key.
"""

from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import Request
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db_errors import LOCK_NOT_AVAILABLE, sqlstate
from app.core.idempotency import repository
from app.core.idempotency.http import IdempotencyKeyInFlight, KeyedRequest, Outcome


def in_flight() -> IdempotencyKeyInFlight:
    """What a keyed write whose wait for a lock ran out (IDEMPOTENCY_WAIT_S) answers."""
    return IdempotencyKeyInFlight(
        "a request with this Idempotency-Key, or another write to this account, is still "
        "being processed; retry shortly",
        headers={"Retry-After": "1"},
    )


async def replay_on_driver(driver: asyncpg.Connection, keyed: KeyedRequest) -> Outcome | None:
    """The committed outcome of the request that used this key first, if one did (raises
    IdempotencyKeyReused when it was another request)."""
    stored = await repository.stored_on_driver(driver, keyed.scope, keyed.key)
    return None if stored is None else keyed.replay(stored)


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
        claim = await repository.claim(session, keyed.claim_params(wait_s))
    except DBAPIError as error:
        if sqlstate(error) == LOCK_NOT_AVAILABLE:
            raise in_flight() from error
        raise
    if claim is None:
        return keyed.replay(await repository.stored(session, scope, key))

    status, result_body = await operation(keyed.fingerprint)
    body_text = result_body.model_dump_json()
    await repository.record(session, claim, status, body_text)
    return Outcome(status, body_text, replayed=False)
