"""The `.env` of the working directory, where every command's Settings look (app/core/config.py):
`vidgen dev` records there the DATABASE_URL of the PostgreSQL it started, so `vidgen audit`
or `vidgen backup create` from another terminal finds it, and never touches a user's own."""

import re
from pathlib import Path

ENV_FILE = Path(".env")
# Marks the line as `vidgen dev`'s own: the next `vidgen dev` may update it (its port may
# change) and starts its PostgreSQL again instead of taking the line for a user's database.
MARKER = "# written by `vidgen dev` for its local PostgreSQL; delete both lines to use your own"
DATABASE_URL_LINE = re.compile(r"^\s*(?:export\s+)?DATABASE_URL\s*=\s*(?P<value>.*?)\s*$")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _find(lines: list[str]) -> int | None:
    return next((i for i, line in enumerate(lines) if DATABASE_URL_LINE.match(line)), None)


def recorded_by_dev(env_file: Path = ENV_FILE) -> str | None:
    """The DATABASE_URL an earlier `vidgen dev` wrote into `env_file`, if the line is its own."""
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    index = _find(lines)
    if index is None or index == 0 or lines[index - 1] != MARKER:
        return None
    match = DATABASE_URL_LINE.match(lines[index])
    return _unquote(match["value"]) if match else None


def record_database_url(url: str, env_file: Path = ENV_FILE) -> str:
    """Write `url` as DATABASE_URL into `env_file` unless a user's own line is there; returns
    what happened, in a sentence for the terminal."""
    text = env_file.read_text() if env_file.exists() else ""
    lines = text.splitlines()
    index = _find(lines)
    line = f"DATABASE_URL={url}"
    if index is not None:
        match = DATABASE_URL_LINE.match(lines[index])
        if match and _unquote(match["value"]) == url:
            return f"DATABASE_URL in {env_file} is already this one"
        if index == 0 or lines[index - 1] != MARKER:
            return (
                f"note: {env_file} has a DATABASE_URL of its own, left as it is; for the other "
                f"commands, export DATABASE_URL='{url}'"
            )
        lines[index] = line
    else:
        lines += ["", MARKER, line] if lines and lines[-1].strip() else [MARKER, line]
    env_file.touch(mode=0o600)  # it holds the local server's password
    env_file.write_text("\n".join(lines) + "\n")
    return f"wrote DATABASE_URL to {env_file}: the other vidgen commands run here will use it"
