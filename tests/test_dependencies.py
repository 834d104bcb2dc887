"""pyproject's dependency bounds against what the code needs and what is tested.

Every runtime dependency has a lower bound no lower than the minimum below, which names the
import or fix that needs it; the versions installed here (the ones the suite runs on)
satisfy every bound. Where the lowest working version could not be established from the
package's release notes or its published wheels, the minimum is the version tested here.
"""

import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.version import Version

from app.core.config import PROJECT_ROOT

TESTED = "the version this suite runs on; no lower one was established"
# name: (the lowest version the code can run on, why)
MINIMUMS: dict[str, tuple[str, str]] = {
    "fastapi": (
        "0.142.0",
        "app/main.py imports fastapi.telemetry.TelemetryConfig and passes FastAPI(telemetry=): "
        "first in the 0.142.0 wheel (absent from 0.141.1); fastapi.sse since 0.135.0 and "
        "fastapi.routing.iter_route_contexts since 0.137.2 (FastAPI's release notes)",
    ),
    "starlette": (
        "0.49.1",
        "FileResponse answers Range since 0.39.0 (/media seeks); 0.49.1 fixes the Range "
        "parsing vulnerability GHSA-7f5h-v6xp-fcq8 (Starlette's release notes)",
    ),
    "uvicorn": (
        "0.30.0",
        "timeout_graceful_shutdown since 0.22.0; signal.signal handlers (which "
        "app/videos/events.py chains to end streams on SIGTERM) since 0.29.0, their "
        "side effects fixed in 0.30.0 (uvicorn's release notes)",
    ),
    "sqlmodel": ("0.0.50", TESTED),
    "sqlalchemy": ("2.1.9", TESTED),
    "asyncpg": ("0.32.0", TESTED),
    "httpx": ("0.28.1", TESTED),
    "fal-client": ("1.0.3", "pinned: app/fal/client.py wraps this exact client"),
    "pydantic": (
        "2.11.0",
        "sqlmodel 0.0.50 requires it (FastAPI 0.142 requires 2.9); our imports exist since 2.0",
    ),
    "pydantic-settings": (
        "2.7.0",
        "app/core/config.py imports NoDecode: in the 2.7.0 wheel, absent from 2.6.1",
    ),
    "typer": ("0.29.0", TESTED),
    "rich": (
        "13.8.0",
        "app/cli/console.py, backup.py: Progress and its columns (all in the 13.8.0 wheel); "
        "typer 0.29 itself requires rich>=13.8.0",
    ),
    "cryptography": (
        "42.0.0",
        "app/fal/simulator/certs.py reads Certificate.not_valid_after_utc, new in 42.0.0",
    ),
    "pyjwt": (
        "2.13.0",
        "app/users/tokens.py verifies with PyJWK under an algorithm allow-list: 2.13.0 binds "
        "the header's alg to the key (GHSA-jq35-7prp-9v3f) and rejects JWK JSON as an HMAC "
        "secret (GHSA-xgmm-8j9v-c9wx) (PyJWT's changelog)",
    ),
    "obstore": ("0.12.1", TESTED),
    "av": ("18.1.0", TESTED),
    "pillow": ("13.0.0", TESTED),
    "prometheus-client": ("0.26.0", TESTED),
    "python-multipart": (
        "0.0.34",
        TESTED + " (POST /api/uploads parses untrusted multipart; several DoS advisories "
        "were fixed in 0.0.18-0.0.31)",
    ),
    "python-json-logger": (
        "3.1.0",
        "app/core/logging.py imports pythonjsonlogger.json.JsonFormatter, the module's name "
        "since 3.1.0 (its changelog; pythonjsonlogger.jsonlogger before)",
    ),
}


def requirements() -> list[Requirement]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def lower_bound(requirement: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    return max(bounds) if bounds else None


def test_every_dependency_has_a_documented_lower_bound_no_lower_than_the_code_needs() -> None:
    problems = []
    for requirement in requirements():
        name = requirement.name.lower()
        if name not in MINIMUMS:
            problems.append(f"{name}: add its minimum and the reason to MINIMUMS")
            continue
        bound, (minimum, why) = lower_bound(requirement), MINIMUMS[name]
        if bound is None or bound < Version(minimum):
            problems.append(f"{requirement}: needs >={minimum} ({why})")
    assert not problems, "\n".join(problems)


def test_installed_versions_satisfy_the_bounds() -> None:
    unmet = [
        f"{requirement} but {version(requirement.name)} is installed"
        for requirement in requirements()
        if not requirement.specifier.contains(version(requirement.name), prereleases=True)
    ]
    assert not unmet, unmet


def test_minimums_name_only_dependencies() -> None:
    assert set(MINIMUMS) == {r.name.lower() for r in requirements()}
