"""`vidgen audit`: the ledger invariants (app/ops/audit.py), checked against the database."""

import asyncio

import typer

from app.cli.database import database_url
from app.ops.audit import run_audit


def audit() -> None:
    """Check the ledger invariants; exit 1 and list the offending rows when one breaks."""
    report = asyncio.run(run_audit(database_url()))
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)
