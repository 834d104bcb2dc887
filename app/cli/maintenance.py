"""`vidgen maintenance on | off`: pause or resume writes on every replica."""

import asyncio
from enum import StrEnum
from typing import Annotated

import typer

from app.cli.database import database_url, one_transaction
from app.core.config import get_settings
from app.ops.maintenance import set_maintenance


class Switch(StrEnum):
    ON = "on"
    OFF = "off"


async def _set_maintenance(enabled: bool, reason: str | None) -> None:
    async with one_transaction() as session:
        await set_maintenance(session, enabled, reason)


def maintenance(
    state: Switch, reason: Annotated[str | None, typer.Option(help="shown to operators")] = None
) -> None:
    """Pause writes on every replica (503 + Retry-After) or resume them; reads keep working."""
    database_url()
    asyncio.run(_set_maintenance(state is Switch.ON, reason))
    refresh = get_settings().maintenance_refresh_s
    typer.echo(f"maintenance {state.value}: every replica follows within {refresh:g}s")
