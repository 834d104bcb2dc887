"""Settings refuse a production configuration that would lose money or webhooks."""

import inspect
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import Settings

PRODUCTION: dict[str, Any] = {
    "_env_file": None,
    "app_env": "production",
    "admin_token": "a-real-admin-token-0123456789",
    "fal_key": "key-id:key-secret",
    "public_base_url": "https://api.example.com",
    "fal_jwks_url": "https://rest.alpha.fal.ai/.well-known/jwks.json",
    "media_signing_key": "a-real-media-signing-key-0123456789",
    "metrics_token": "a-real-metrics-token-0123456789",
}


def test_a_complete_production_configuration_is_accepted() -> None:
    settings = Settings(**PRODUCTION)
    assert settings.price_margin_percent == 20 and settings.fal_submit_timeout_s == 120


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"fal_key": None}, "FAL_KEY"),
        ({"public_base_url": "http://api.example.com"}, "PUBLIC_BASE_URL"),
        ({"public_base_url": "https://127.0.0.1:8000"}, "PUBLIC_BASE_URL"),
        ({"public_base_url": "https://localhost"}, "PUBLIC_BASE_URL"),
        ({"public_base_url": "https://[::1]:8443"}, "PUBLIC_BASE_URL"),
        ({"fal_jwks_url": "http://rest.alpha.fal.ai/.well-known/jwks.json"}, "FAL_JWKS_URL"),
        ({"admin_token": "dev-admin-token"}, "ADMIN_TOKEN"),
        ({"media_signing_key": "dev-media-signing-key"}, "MEDIA_SIGNING_KEY"),
        ({"media_backend": "s3"}, "S3_BUCKET"),
    ],
)
def test_production_refuses_to_start_with(change: dict[str, Any], names: str) -> None:
    with pytest.raises(ValidationError, match=names):
        Settings(**(PRODUCTION | change))


def test_development_allows_the_simulator_and_a_local_webhook_address() -> None:
    settings = Settings(_env_file=None, app_env="development")  # type: ignore[call-arg]
    assert settings.fal_key is None and settings.public_base_url.startswith("http://127.0.0.1")


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"fal_submit_timeout_s": 700, "submit_uncertain_grace_s": 600}, "SUBMIT_UNCERTAIN"),
        ({"claim_lease_s": 30, "fal_timeout_s": 10}, "CLAIM_LEASE_S"),
    ],
)
def test_leases_must_outlast_the_fal_calls_they_cover(change: dict[str, Any], names: str) -> None:
    with pytest.raises(ValidationError, match=names):
        Settings(_env_file=None, **change)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_placeholder_secrets_are_refused_outside_development_and_test(env: str) -> None:
    with pytest.raises(ValidationError, match="ADMIN_TOKEN"):
        Settings(**(PRODUCTION | {"app_env": env, "admin_token": "dev-admin-token"}))
    with pytest.raises(ValidationError, match="METRICS_TOKEN"):
        Settings(**(PRODUCTION | {"app_env": env, "metrics_token": "short"}))


def test_vidgen_serve_listens_on_loopback_unless_told_otherwise() -> None:
    from app.cli.serve import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


def test_the_upload_limit_answers_to_its_design_name_and_its_first_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The environment is the boundary here: DESIGN.md §10 names UPLOAD_MAX_BYTES.
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "2000")
    assert Settings(_env_file=None).upload_max_bytes == 2000  # type: ignore[call-arg]
    monkeypatch.delenv("UPLOAD_MAX_BYTES")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "3000")
    assert Settings(_env_file=None).upload_max_bytes == 3000  # type: ignore[call-arg]
