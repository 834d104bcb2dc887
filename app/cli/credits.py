"""`vidgen credits add`: move a user's credits by hand, as one ledger transaction."""

import asyncio
import uuid
from enum import StrEnum
from typing import Annotated

import typer
from pydantic import ValidationError

from app.cli.console import fail
from app.cli.database import database_url, one_transaction
from app.core.errors import AppError
from app.credits.schemas import CreditGrant, CreditTransactionPublic
from app.credits.service import grant
from app.users.service import find_user

credits_app = typer.Typer(no_args_is_help=True, help="Move a user's credits (the ledger).")


class OperatorKind(StrEnum):
    """What an operator may add: CreditGrant's kinds (tests/test_cli.py keeps them equal).
    Debits and refunds belong to video jobs, so `--kind` does not offer them."""

    GRANT = "grant"
    PURCHASE = "purchase"
    ROLL = "roll"
    ADJUSTMENT = "adjustment"


async def _add_credits(user: str, amount: int, kind: OperatorKind, reason: str | None,
                       period: str | None, key: str) -> CreditTransactionPublic:  # fmt: skip
    async with one_transaction() as session:
        target = await find_user(session, user)
        request = CreditGrant(
            user_id=target.id, amount=amount, kind=kind.value, reason=reason, period=period
        )
        return CreditTransactionPublic.of(await grant(session, request, f"cli:{key}"))


@credits_app.command("add")
def credits_add(
    user: Annotated[str, typer.Option(help="the user's email or id")],
    amount: Annotated[int, typer.Option(help="credits; negative only with --kind adjustment")],
    kind: Annotated[OperatorKind, typer.Option()] = OperatorKind.GRANT,
    reason: Annotated[str | None, typer.Option()] = None,
    period: Annotated[str | None, typer.Option(help="required with --kind roll")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="repeat a key to make a retry safe (default: new key)")
    ] = None,
) -> None:
    """Add credits to a user (the seed's add-credits script), as one ledger transaction."""
    database_url()
    try:
        row = asyncio.run(
            _add_credits(user, amount, kind, reason, period, idempotency_key or str(uuid.uuid4()))
        )
    except AppError as error:
        fail(f"{error.code}: {error.detail}")
    except ValidationError as error:
        fail("; ".join(str(e["msg"]) for e in error.errors()))
    typer.echo(row.model_dump_json(indent=2))
