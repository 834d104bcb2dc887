"""`vidgen smoke`: the staging smoke suite (app/ops/smoke.py) against a running deployment."""

import asyncio
from typing import Annotated

import typer

from app.cli.console import fail
from app.core.config import get_settings
from app.ops.smoke import SmokeSuite
from app.ops.smoke import render as render_smoke


def smoke(
    base_url: Annotated[str, typer.Option(help="e.g. https://staging.example.com")],
    admin_token: Annotated[
        str | None, typer.Option(help="default: ADMIN_TOKEN from the environment")
    ] = None,
    skip_video: bool = False,
    video_timeout: float = 180.0,
) -> None:
    """The staging smoke suite: exit 0 only if every check passes."""
    suite = SmokeSuite(
        base_url.rstrip("/"),
        admin_token or get_settings().admin_token,
        skip_video=skip_video,
        video_timeout_s=video_timeout,
    )
    results = asyncio.run(suite.run())
    typer.echo(render_smoke(results))
    failed = [r.name for r in results if not r.passed]
    if failed:
        fail(f"smoke FAILED: {', '.join(failed)}")
    typer.echo("smoke passed")
