"""Sign-in with the frontend's own tokens: JWTs verified against a JWKS served on 127.0.0.1
(RS256, ES256, EdDSA) or a shared HS256 secret, and every way a token must be refused."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError

from app.core.config import AppEnv, Settings
from app.users.tokens import looks_like_jwt
from tests.support.apps import make_settings, serve_app
from tests.support.factories import ADMIN, create_user
from tests.support.jwks import (
    JwksServer,
    SigningKey,
    claims_for,
    compact,
    ec_key,
    ed25519_key,
    hs256,
    jwks_server,
    rsa_key,
    unresponsive_url,
)
from tests.support.traffic import create_body

ISSUER = "https://idp.example.test/"
AUDIENCE = "vidgen-api"
SECRET = "a-shared-hs256-secret-of-32-bytes-or-more"
PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {"RS256": rsa_key("rsa-1"), "ES256": ec_key("ec-1"), "EdDSA": ed25519_key("ed-1")}


@pytest.fixture(scope="module")
def idp(keys: dict[str, SigningKey]) -> Iterator[JwksServer]:
    """The IdP every test shares that never changes its keys."""
    with jwks_server(*keys.values()) as server:
        yield server


@asynccontextmanager
async def app_with(database_url: str, **auth: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, auth_issuer=ISSUER, auth_audience=AUDIENCE, **auth)
    async with serve_app(settings) as client:
        yield client


def claims(user_id: uuid.UUID | str, **extra: Any) -> dict[str, Any]:
    return claims_for(user_id, ISSUER, AUDIENCE, **extra)


async def credits_as(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/credits", headers={"Authorization": f"Bearer {token}"})


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == code


async def test_tokens_from_the_jwks_sign_in_as_their_user(
    database_url: str, idp: JwksServer, keys: dict[str, SigningKey]
) -> None:
    async with app_with(database_url, auth_jwks_url=idp.url) as client:
        rich, poor = await create_user(client, credits=7), await create_user(client)
        for key in keys.values():
            response = await credits_as(client, key.sign(claims(rich.id)))
            assert response.status_code == 200, (key.algorithm, response.text)
            assert response.json()["balance"] == 7, key.algorithm
        response = await credits_as(client, keys["EdDSA"].sign(claims(poor.id)))
        assert response.status_code == 200 and response.json()["balance"] == 0
        # AUTH_LEEWAY_S (30 s by default): a token that expired 10 s ago still passes.
        expired_just_now = claims(rich.id, exp=int(time.time()) - 10)
        assert (await credits_as(client, keys["RS256"].sign(expired_just_now))).status_code == 200


async def test_a_signed_in_user_creates_a_video_and_pays_for_it(
    database_url: str, idp: JwksServer, keys: dict[str, SigningKey]
) -> None:
    # The create path authenticates, then opens its transaction on the driver: the token's
    # user lookup must leave the connection as the API key's does.
    async with app_with(database_url, auth_jwks_url=idp.url) as client:
        user = await create_user(client, credits=1000)
        token = keys["ES256"].sign(claims(user.id))
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
        body = create_body("signed in")
        created = await client.post("/api/videos", json=body, headers=headers)
        assert created.status_code == 202, created.text
        replayed = await client.post("/api/videos", json=body, headers=headers)
        assert replayed.headers.get("idempotent-replayed") == "true"
        page = (await client.get("/api/credits", headers=user.auth)).json()
        assert page["balance"] == 1000 - created.json()["credits_charged"]


async def test_hs256_tokens_sign_in_with_the_shared_secret(
    database_url: str, keys: dict[str, SigningKey]
) -> None:
    async with app_with(database_url, auth_jwt_secret=SECRET) as client:
        user = await create_user(client, credits=3)
        header = {"alg": "HS256", "typ": "JWT"}
        response = await credits_as(client, hs256(header, claims(user.id), SECRET.encode()))
        assert response.status_code == 200 and response.json()["balance"] == 3
        wrong_secret = hs256(header, claims(user.id), b"another-secret-of-32-bytes-or-more!!")
        assert_problem(await credits_as(client, wrong_secret), 401, "unauthorized")
        # With a secret only, a public-key token has nothing to verify it.
        rs256 = keys["RS256"].sign(claims(user.id))
        assert_problem(await credits_as(client, rs256), 401, "unauthorized")


def _tamper_signature(token: str) -> str:
    head, body, signature = token.split(".")
    flipped = "A" if signature[10] != "A" else "B"
    return f"{head}.{body}.{signature[:10]}{flipped}{signature[11:]}"


def _swap_payload(token: str, other: str) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{other.split('.')[1]}.{signature}"


# Each case: (the IdP's keys, the user's id, another user's id) -> a token that must be refused.
Forge = Callable[[dict[str, SigningKey], uuid.UUID, uuid.UUID], str]
REFUSED: dict[str, Forge] = {
    "wrong issuer": lambda k, u, _: k["RS256"].sign(claims(u, iss="https://evil.example/")),
    "wrong audience": lambda k, u, _: k["ES256"].sign(claims(u, aud="another-api")),
    "no issuer": lambda k, u, _: k["RS256"].sign(claims(u, iss=None)),
    "expired": lambda k, u, _: k["EdDSA"].sign(claims(u, exp=int(time.time()) - 120)),
    "not yet valid": lambda k, u, _: k["RS256"].sign(claims(u, nbf=int(time.time()) + 120)),
    "no exp": lambda k, u, _: k["RS256"].sign(claims(u, exp=None)),
    "alg none": lambda k, u, _: compact({"alg": "none", "kid": "rsa-1"}, claims(u)),
    "alg none without kid": lambda k, u, _: compact({"alg": "none"}, claims(u)),
    # HS/RS confusion: HMAC keyed with the IdP's public key, as PEM and as its JWK.
    "HS256 keyed with the RSA public key": lambda k, u, _: hs256(
        {"alg": "HS256", "kid": "rsa-1"}, claims(u), k["RS256"].public_pem()
    ),
    "HS256 keyed with the JWK": lambda k, u, _: hs256(
        {"alg": "HS256", "kid": "rsa-1"}, claims(u), json.dumps(k["RS256"].jwk()).encode()
    ),
    "alg not the key's": lambda k, u, _: SigningKey("rsa-1", "ES256", k["ES256"].private).sign(
        claims(u)
    ),
    "unknown kid": lambda k, u, _: SigningKey("nobody", "RS256", k["RS256"].private).sign(
        claims(u)
    ),
    "no kid": lambda k, u, _: jwt.encode(claims(u), k["RS256"].private, algorithm="RS256"),
    "unknown user": lambda k, u, _: k["RS256"].sign(claims(uuid.uuid4())),
    "sub not a uuid": lambda k, u, _: k["RS256"].sign(claims("user_2a8f9c")),
    "tampered signature": lambda k, u, _: _tamper_signature(k["ES256"].sign(claims(u))),
    "another user's claims": lambda k, u, other: _swap_payload(
        k["RS256"].sign(claims(u)), k["RS256"].sign(claims(other))
    ),
}


@pytest.mark.parametrize("case", REFUSED)
async def test_refused_tokens_are_401_unauthorized(
    case: str, database_url: str, idp: JwksServer, keys: dict[str, SigningKey]
) -> None:
    async with app_with(database_url, auth_jwks_url=idp.url) as client:
        user, other = await create_user(client), await create_user(client)
        token = REFUSED[case](keys, user.id, other.id)
        response = await credits_as(client, token)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        # The same user with an honest token is let in: the refusal was about the token.
        assert (await credits_as(client, keys["RS256"].sign(claims(user.id)))).status_code == 200


async def test_a_new_kid_in_the_jwks_works_without_a_restart(database_url: str) -> None:
    old, new = rsa_key("2026-01"), ed25519_key("2026-02")
    with jwks_server(old) as server:
        async with app_with(
            database_url, auth_jwks_url=server.url, auth_jwks_refetch_min_interval_s=0
        ) as client:
            user = await create_user(client)
            assert (await credits_as(client, old.sign(claims(user.id)))).status_code == 200
            server.serve(new)  # the IdP rotates: the old key is gone, a new kid signs
            assert (await credits_as(client, new.sign(claims(user.id)))).status_code == 200
            refused = await credits_as(client, old.sign(claims(user.id)))
            assert_problem(refused, 401, "unauthorized")
            assert server.requests == 3  # first use, the new kid, the old kid looked up again


async def test_bogus_kids_cost_the_idp_one_fetch_per_interval(
    database_url: str, keys: dict[str, SigningKey]
) -> None:
    with jwks_server(keys["RS256"]) as server:
        async with app_with(database_url, auth_jwks_url=server.url) as client:
            user = await create_user(client)
            bogus = [
                SigningKey(f"bogus-{n}", "RS256", keys["RS256"].private).sign(claims(user.id))
                for n in range(20)
            ]
            # All at once, before any key is cached: they share one fetch.
            responses = await asyncio.gather(*(credits_as(client, token) for token in bogus))
            for response in responses:
                assert_problem(response, 401, "unauthorized")
            again = await asyncio.gather(*(credits_as(client, token) for token in bogus))
            assert {response.status_code for response in again} == {401}
            good = await credits_as(client, keys["RS256"].sign(claims(user.id)))
            assert good.status_code == 200
            assert server.requests == 1


async def test_an_idp_outage_is_503_unless_the_cached_key_suffices(
    database_url: str, keys: dict[str, SigningKey]
) -> None:
    key = keys["ES256"]
    with jwks_server(key) as server:
        # Keys go stale at once and may be refetched at once: every request asks the IdP.
        async with app_with(
            database_url,
            auth_jwks_url=server.url,
            auth_jwks_cache_s=1e-9,
            auth_jwks_refetch_min_interval_s=0,
        ) as client:
            user = await create_user(client)
            assert (await credits_as(client, key.sign(claims(user.id)))).status_code == 200
            server.fail(503)
            # The stale key still verifies the tokens it signed.
            assert (await credits_as(client, key.sign(claims(user.id)))).status_code == 200
            assert server.requests == 2
            unknown = SigningKey("rotated-during-outage", "ES256", key.private)
            response = await credits_as(client, unknown.sign(claims(user.id)))
            assert_problem(response, 503, "auth_provider_unavailable")
            assert response.headers["retry-after"] == "1"


async def test_an_unresponsive_idp_is_503_within_the_timeout(
    database_url: str, keys: dict[str, SigningKey]
) -> None:
    with unresponsive_url() as url:
        async with app_with(database_url, auth_jwks_url=url, auth_jwks_timeout_s=0.3) as client:
            user = await create_user(client)
            started = time.monotonic()
            response = await credits_as(client, keys["RS256"].sign(claims(user.id)))
            assert_problem(response, 503, "auth_provider_unavailable")
            assert time.monotonic() - started < 5
            # Meanwhile API keys are answered as ever.
            assert (await client.get("/api/credits", headers=user.auth)).status_code == 200


async def test_api_keys_work_as_before_and_never_touch_the_idp(
    database_url: str, keys: dict[str, SigningKey]
) -> None:
    with jwks_server(*keys.values()) as server:
        async with app_with(database_url, auth_jwks_url=server.url) as client:
            user = await create_user(client, credits=5)
            assert not looks_like_jwt(user.api_key)
            response = await client.get("/api/credits", headers=user.auth)
            assert response.status_code == 200 and response.json()["balance"] == 5
            wrong = await client.get("/api/credits", headers={"Authorization": "Bearer vg_nope"})
            assert_problem(wrong, 401, "unauthorized")
            assert wrong.json()["detail"] == "invalid API key"
            assert_problem(await client.get("/api/credits", headers=ADMIN), 403, "forbidden")
            assert server.requests == 0


async def test_no_jwt_is_accepted_when_no_key_source_is_configured(
    database_url: str, keys: dict[str, SigningKey]
) -> None:
    async with app_with(database_url) as client:
        user = await create_user(client)
        for key in keys.values():
            assert_problem(await credits_as(client, key.sign(claims(user.id))), 401, "unauthorized")
        hs = hs256({"alg": "HS256"}, claims(user.id), SECRET.encode())
        assert_problem(await credits_as(client, hs), 401, "unauthorized")


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_settings_refuse_an_unsafe_jwt_configuration() -> None:
    jwks = "https://idp.example.test/.well-known/jwks.json"
    with pytest.raises(ValidationError, match="not both"):
        _settings(auth_jwks_url=jwks, auth_jwt_secret=SECRET)
    with pytest.raises(ValidationError, match="32\\+ bytes"):
        _settings(auth_jwt_secret="short")
    for source in ({"auth_jwks_url": jwks}, {"auth_jwt_secret": SECRET}):
        for env in (AppEnv.STAGING, AppEnv.PRODUCTION):
            with pytest.raises(ValidationError, match="AUTH_ISSUER and AUTH_AUDIENCE"):
                _settings(app_env=env, auth_issuer=ISSUER, **source)
    with pytest.raises(ValidationError, match="AUTH_JWKS_URL must be https"):
        _settings(
            app_env=AppEnv.STAGING,
            auth_jwks_url="http://idp.example.test/jwks.json",
            auth_issuer=ISSUER,
            auth_audience=AUDIENCE,
        )
    # A developer's machine may leave issuer and audience unchecked.
    assert _settings(app_env=AppEnv.DEVELOPMENT, auth_jwks_url=jwks).auth_issuer is None
