"""A throwaway or development PostgreSQL run from Debian's server binaries.

Used by `vidgen dev` (data under `.data/`) and by the test suite (a temporary directory).
`initdb` refuses to run as root, so as root the server runs as the `postgres` user.
"""

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from app.ops import localpg_repository
from app.ops.backup.pgtools import packaged_bin_dirs

MIN_MAJOR = 15
INSTALL_HINT = (
    "No PostgreSQL >= 15 server binaries found (looked in $PG_BIN_DIR and "
    "/usr/lib/postgresql/<major>/bin). Install them, e.g.: apt-get install postgresql-15, "
    "or set DATABASE_URL to an existing server."
)
# Durability off: only for throwaway test clusters, never for `vidgen dev` data.
THROWAWAY_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class LocalPostgresError(RuntimeError):
    pass


def find_bin_dir() -> Path:
    if env := os.environ.get("PG_BIN_DIR"):
        return Path(env)
    candidates = [(major, d) for major, d in packaged_bin_dirs("initdb") if major >= MIN_MAJOR]
    if not candidates:
        raise LocalPostgresError(INSTALL_HINT)
    return max(candidates)[1]


async def ensure_database(server_url: str, name: str) -> None:
    """Create database `name` on the server at `server_url` unless it is there already."""
    conn = await asyncpg.connect(server_url)
    try:
        if not await localpg_repository.database_exists(conn, name):
            await localpg_repository.create_database(conn, name)
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class LocalPostgres:
    """A cluster under `data_dir`. Only its owner gets in: TCP on 127.0.0.1 needs the
    password (SCRAM) kept in `<data_dir>.password` (mode 0600), and the Unix socket lives in
    the data directory (mode 0700). A `throwaway` cluster (tests, benchmarks) trusts local
    connections instead; it lives in a fresh temporary directory for one run."""

    data_dir: Path
    port: int
    throwaway: bool = False
    # More `name=value` server settings, e.g. to load pg_stat_statements (tests, benchmarks).
    settings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.bin_dir = find_bin_dir()
        # initdb refuses root; run the cluster as an unprivileged account instead.
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self._handed_password: Path | None = None

    @property
    def password_file(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + ".password")

    def _credentials(self) -> str:
        if self.password_file.exists():
            return f"postgres:{self.password_file.read_text().strip()}"
        return "postgres"  # a throwaway cluster, or one made before passwords (trust)

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{self._credentials()}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            user=self.run_as,
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
        )
        if result.returncode != 0:
            log = self.data_dir / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise LocalPostgresError(f"{args[0]} failed:\n{result.stdout}{result.stderr}{tail}")
        return result

    def can_use(self, directory: Path) -> bool:
        """Whether the server's account can create and enter `directory`."""
        if not self.run_as:
            return True
        existing = directory
        while not existing.exists():
            existing = existing.parent
        probe = ["test", "-w", str(existing), "-a", "-x", str(existing)]
        return subprocess.run(probe, user=self.run_as, check=False).returncode == 0

    def _chown(self, path: Path) -> None:
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._chown(self.data_dir)
            os.chmod(self.data_dir, 0o700)
            try:
                self._run(
                    "initdb", "-D", str(self.data_dir), "-U", "postgres",
                    "--encoding=UTF8", "--locale=C.UTF-8", *self._auth_options(),
                )  # fmt: skip
            finally:
                if self._handed_password is not None:
                    self._handed_password.unlink(missing_ok=True)
        if self.is_running():
            # Left running by an earlier `vidgen dev`: reuse it, on the port it listens on.
            self.port = int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
            return
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.data_dir}",
            "-c max_connections=300",
        ]
        if self.throwaway:
            options += [f"-c {s}" for s in THROWAWAY_SETTINGS]
        options += [f"-c {s}" for s in self.settings]
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
            "-l", str(self.data_dir / "server.log"), "-o", " ".join(options),
        )  # fmt: skip

    def _auth_options(self) -> list[str]:
        if self.throwaway:
            return ["--auth=trust"]
        password = secrets.token_urlsafe(24)
        self.password_file.touch(mode=0o600)
        self.password_file.write_text(password + "\n")
        # initdb wants an empty data directory: the password goes through a private temp file
        # the server's account can read, removed once initdb has run.
        descriptor, name = tempfile.mkstemp(prefix="vidgen-initdb-")
        with os.fdopen(descriptor, "w") as handed:
            handed.write(password + "\n")
        self._handed_password = Path(name)
        self._chown(self._handed_password)
        return ["--auth=scram-sha-256", f"--pwfile={name}"]

    def is_running(self) -> bool:
        status = [str(self.bin_dir / "pg_ctl"), "status", "-D", str(self.data_dir)]
        result = subprocess.run(status, user=self.run_as, capture_output=True, check=False)
        return result.returncode == 0

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir))

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.password_file.unlink(missing_ok=True)
