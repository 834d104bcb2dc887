"""Per-user rate limits shared by every replica, with PostgreSQL as the shared state.

A token bucket per (action, user): `per_minute` tokens, refilled continuously, so a client may
spend a minute's allowance at once and then one every 60/per_minute seconds. Taking a token is
one statement outside the request's transaction: a refused request costs no other work, and a
request that fails later still counted (failed creates cost the database too).
"""

import math

import asyncpg

from app.core import ratelimit_repository
from app.core.errors import AppError


class RateLimited(AppError):
    status, code, title = 429, "rate_limited", "Too many requests"


async def take(driver: asyncpg.Connection, action: str, user_id: object, per_minute: int) -> None:
    """Spend one of the caller's `action` tokens, or raise RateLimited with Retry-After.

    `per_minute` 0 turns the limit off.
    """
    if per_minute <= 0:
        return
    per_second = per_minute / 60
    allowed, tokens = await ratelimit_repository.take(
        driver, f"{action}:{user_id}", per_minute, per_second
    )
    if not allowed:
        wait_s = max(1, math.ceil((1 - tokens) / per_second))
        raise RateLimited(
            f"at most {per_minute} {action} requests a minute; retry in {wait_s}s",
            headers={"Retry-After": str(wait_s)},
        )
