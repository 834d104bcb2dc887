"""The PostgreSQL client tools (pg_dump, psql): where they are, their version, how to connect."""

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from app.ops.backup.errors import BackupError

PG_LIB_DIR = Path("/usr/lib/postgresql")
# The first minor release of each major whose psql has `\restrict` (every meta-command refused
# until `\unrestrict <key>`); every major after 17 has it from its start.
PSQL_RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}


@dataclass(frozen=True)
class PgVersion:
    text: str  # as the tool or server reports it, e.g. "15.10"
    major: int

    @classmethod
    def parse(cls, text: str) -> "PgVersion":
        match = re.search(r"(\d+)(?:\.(\d+))?", text)
        if match is None:
            raise BackupError(f"cannot read a PostgreSQL version from {text!r}")
        return cls(match[0], int(match[1]))

    @property
    def minor(self) -> int:
        _, _, minor = self.text.partition(".")
        return int(minor) if minor.isdigit() else 0


def packaged_bin_dirs(tool: str) -> list[tuple[int, Path]]:
    """Debian's `/usr/lib/postgresql/<major>/bin` directories holding `tool`, with their major."""
    return [
        (int(d.parent.name), d)
        for d in PG_LIB_DIR.glob("*/bin")
        if d.parent.name.isdigit() and (d / tool).is_file()
    ]


def find_pg_tool(name: str) -> Path:
    """`$PG_BIN_DIR/<name>`, else the newest Debian-packaged one, else the one on PATH.

    Debian installs each major under /usr/lib/postgresql/<major>/bin and PATH gets a
    wrapper that may pick an older one; pg_dump must be at least the server's major.
    """
    if (env := os.environ.get("PG_BIN_DIR")) and (Path(env) / name).is_file():
        return Path(env) / name
    if packaged := packaged_bin_dirs(name):
        return max(packaged)[1] / name
    if on_path := shutil.which(name):
        return Path(on_path)
    raise BackupError(
        f"{name} not found; install the PostgreSQL client (apt-get install postgresql-client) "
        "or set PG_BIN_DIR"
    )


def tool_version(tool: Path) -> PgVersion:
    result = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{tool} --version failed: {result.stderr.strip()}")
    # "pg_dump (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)": the number after the name.
    return PgVersion.parse(result.stdout.split(")", 1)[-1])


def check_dump_version(pg_dump: Path, dump: PgVersion, server: PgVersion) -> None:
    """pg_dump refuses (or worse, misreads) a server of a newer major; say what to install."""
    if dump.major < server.major:
        raise BackupError(
            f"{pg_dump} is version {dump.text}, older than the server (PostgreSQL "
            f"{server.text}); pg_dump must be at least the server's major version. Install "
            f"the PostgreSQL {server.major} client, e.g. apt-get install "
            f"postgresql-client-{server.major} (found automatically under "
            f"{PG_LIB_DIR}/{server.major}/bin), or set PG_BIN_DIR to its bin directory."
        )


def check_psql_restricts(psql: Path, version: PgVersion) -> None:
    """Restore runs psql restricted (restore.py says why); refuse a psql that cannot be."""
    since = PSQL_RESTRICT_SINCE.get(version.major)
    if version.major > max(PSQL_RESTRICT_SINCE) or (since is not None and version.minor >= since):
        return
    needed = f"{version.major}.{since}" if since is not None else "15.14"
    raise BackupError(
        f"{psql} is version {version.text}, too old to be locked out of meta-commands "
        f"(\\restrict) while it restores, so a tampered backup could run shell commands "
        f"through it. Upgrade the PostgreSQL client to {needed} or later, or set PG_BIN_DIR to "
        "a newer one's bin directory."
    )


def tool_connection(dsn: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and an environment carrying it as PGPASSWORD.

    Keeps the password out of the process list, where command lines are world-readable.
    """
    parts = urlsplit(dsn)
    env = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}
    if parts.password is None:
        return dsn, env
    env["PGPASSWORD"] = unquote(parts.password)
    userinfo, hostinfo = parts.netloc.rsplit("@", 1)
    netloc = f"{userinfo.split(':', 1)[0]}@{hostinfo}"
    return urlunsplit(parts._replace(netloc=netloc)), env


def describe_target(dsn: str) -> str:
    parts = urlsplit(dsn)
    database = unquote(parts.path.lstrip("/")) or "(default database)"
    host = parts.hostname or "local socket"
    return f'database "{database}" on {host}:{parts.port or 5432}'
