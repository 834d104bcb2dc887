"""Maintenance mode: a flag in the database that every replica honours within seconds.

While it is on, writes answer 503 `maintenance` with Retry-After; reads and Fal's webhooks
keep working (jobs already running still finish and refund correctly).
"""

import time

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.text import Text
from app.ops import maintenance_repository

FLAG = "maintenance"


class MaintenanceState(BaseModel):
    enabled: bool
    reason: Text | None = Field(default=None, max_length=500)


class MaintenanceFlag:
    """This replica's view of the flag, re-read from the database at most every `ttl_s`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_s: float) -> None:
        self.sessions = sessions
        self.ttl_s = ttl_s
        self._enabled = False
        self._read_at = float("-inf")

    def forget(self) -> None:
        """Re-read on the next request (after this replica changed the flag itself)."""
        self._read_at = float("-inf")

    async def enabled(self) -> bool:
        if time.monotonic() - self._read_at > self.ttl_s:
            try:
                async with self.sessions() as session:
                    self._enabled = await maintenance_repository.flag_enabled(session, FLAG)
            except Exception:  # database down: keep the last known state, /api/health says why
                pass
            self._read_at = time.monotonic()
        return self._enabled


async def set_maintenance(session: AsyncSession, enabled: bool, reason: str | None = None) -> None:
    await maintenance_repository.set_flag(session, FLAG, enabled, reason)
