"""`vidgen audit`: the ledger invariants (app/ops/audit.py), checked against the database."""

import asyncio

import typer

from app.cli.database import database_url
from app.ops.audit import recount_active_jobs, run_audit


def audit() -> None:
    """Check the ledger invariants; exit 1 and list the offending rows when one breaks."""
    report = asyncio.run(run_audit(database_url()))
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)


def recount_active_jobs_command() -> None:
    """Set every user's active-job count to their unfinished videos, where it drifted."""
    recounts = asyncio.run(recount_active_jobs(database_url()))
    for recount in recounts:
        typer.echo(f"{recount.user_id} {recount.email}: {recount.before} -> {recount.after}")
    typer.echo(f"recounted {len(recounts)} user(s)")
