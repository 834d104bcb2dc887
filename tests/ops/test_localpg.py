"""The development PostgreSQL (`vidgen dev`) lets in only its owner."""

import os
import tempfile
from pathlib import Path

import asyncpg
import pytest

from app.ops.localpg import LocalPostgres, free_port


async def test_the_dev_cluster_wants_its_password() -> None:
    home = Path(tempfile.mkdtemp(prefix="vidgen-devpg-"))
    os.chmod(home, 0o755)  # as .data/ is: the server's account (postgres, under root) must enter
    server = LocalPostgres(home / "pg", free_port())
    server.start()
    try:
        assert server.password_file.stat().st_mode & 0o777 == 0o600
        assert oct(server.data_dir.stat().st_mode & 0o777) == oct(0o700)  # the socket's home
        connection = await asyncpg.connect(server.url)
        assert await connection.fetchval("SELECT current_user") == "postgres"
        await connection.close()
        for stranger in (
            f"postgresql://postgres@127.0.0.1:{server.port}/postgres",
            f"postgresql://postgres:guess@127.0.0.1:{server.port}/postgres",
            f"postgresql://nobody@127.0.0.1:{server.port}/postgres",
        ):
            with pytest.raises(
                (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)
            ):
                await asyncpg.connect(stranger)
    finally:
        server.destroy()
    assert not server.password_file.exists()
