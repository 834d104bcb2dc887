"""Per-user rate limits shared by every replica, with PostgreSQL as the shared state.

A token bucket per (action, user): `per_minute` tokens, refilled continuously, so a client may
spend a minute's allowance at once and then one every 60/per_minute seconds. Taking a token is
one statement (a create takes its token inside its own one statement, app/videos/service.py):
a refused request costs no other work, and a request that fails later still counted (failed
creates cost the database too).
"""

import math
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.core import ratelimit_repository
from app.core.errors import AppError


class RateLimited(AppError):
    status, code, title = 429, "rate_limited", "Too many requests"


@dataclass(frozen=True)
class Bucket:
    """One caller's bucket for one action; `per_minute` 0 turns the limit off."""

    action: str
    user_id: object
    per_minute: int

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def params(self) -> dict[str, Any]:
        """The parameters of ratelimit_repository's SQL for this bucket."""
        return {
            "key": f"{self.action}:{self.user_id}",
            "capacity": self.per_minute,
            "per_second": self.per_minute / 60,
        }

    def refusal(self, tokens_before: float | None) -> RateLimited:
        """The 429 for a take that found `tokens_before` (None: a new bucket) in the bucket."""
        tokens = self.per_minute if tokens_before is None else float(tokens_before)
        per_second = self.per_minute / 60
        wait_s = max(1, math.ceil((1 - tokens) / per_second))
        return RateLimited(
            f"at most {self.per_minute} {self.action} requests a minute; retry in {wait_s}s",
            headers={"Retry-After": str(wait_s)},
        )


async def take(driver: asyncpg.Connection, bucket: Bucket) -> None:
    """Spend one of the bucket's tokens, or raise RateLimited with Retry-After."""
    if not bucket.enabled:
        return
    allowed, tokens = await ratelimit_repository.take(driver, bucket.params())
    if not allowed:
        raise bucket.refusal(tokens)
