"""Fal's webhook keys: a JWKS served on 127.0.0.1, fetched, cached, and survived when it fails."""

import base64
import hashlib
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.datastructures import Headers

from app.fal import webhooks
from app.fal.webhooks import InvalidWebhook, JwksCache, JwksUnavailable
from tests.support.jwks import JwksServer
from tests.support.jwks import jwks_server as serving_jwks


def jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x}


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    with serving_jwks() as server:
        yield server


def serve(server: JwksServer, *keys: Ed25519PrivateKey) -> None:
    """Fal's JWKS: its Ed25519 webhook keys."""
    server.serve_jwks([jwk(k) for k in keys])


def signed(key: Ed25519PrivateKey, body: bytes, user_id: str = "fal-user") -> Headers:
    timestamp = str(int(time.time()))
    message = f"req-1\n{user_id}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()
    return Headers(
        {
            webhooks.REQUEST_ID: "req-1",
            webhooks.USER_ID: user_id,
            webhooks.TIMESTAMP: timestamp,
            webhooks.SIGNATURE: key.sign(message).hex(),
        }
    )


def cache(url: str) -> JwksCache:
    return JwksCache(url, ttl_s=3600, refetch_min_interval_s=60)


async def test_a_signed_webhook_verifies_and_one_for_another_account_is_refused(
    jwks_server: JwksServer,
) -> None:
    key = Ed25519PrivateKey.generate()
    serve(jwks_server, key)
    keys = cache(jwks_server.url)
    body = b'{"request_id": "req-1"}'
    verified = await webhooks.verify(signed(key, body), body, keys, tolerance_s=300)
    assert verified.request_id == "req-1"
    same = await webhooks.verify(
        signed(key, body), body, keys, tolerance_s=300, expected_user_id="fal-user"
    )
    assert same.request_id == "req-1"
    with pytest.raises(InvalidWebhook, match="another Fal user id"):
        await webhooks.verify(
            signed(key, body, user_id="someone-else"), body, keys,
            tolerance_s=300, expected_user_id="fal-user",
        )  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"keys": "nope"}', b'{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "!!"}]}',
     b'{"keys": []}', b'{"other": 1}', b"[1, 2]"],
)  # fmt: skip
async def test_a_malformed_jwks_is_a_failed_fetch_and_a_401_never_a_500(
    jwks_server: JwksServer, body: bytes
) -> None:
    jwks_server.body = body
    keys = cache(jwks_server.url)
    with pytest.raises(JwksUnavailable):
        await keys.keys()
    key = Ed25519PrivateKey.generate()
    with pytest.raises(InvalidWebhook, match="could not fetch Fal's keys"):
        await webhooks.verify(signed(key, b"{}"), b"{}", keys, tolerance_s=300)


async def test_after_a_failed_fetch_it_backs_off_instead_of_fetching_per_request(
    jwks_server: JwksServer,
) -> None:
    jwks_server.status = 503
    keys = cache(jwks_server.url)
    key = Ed25519PrivateKey.generate()
    for _ in range(20):
        with pytest.raises(InvalidWebhook):
            await webhooks.verify(signed(key, b"{}"), b"{}", keys, tolerance_s=300)
    assert jwks_server.requests == 1 and keys.fetches == 1


async def test_the_last_good_keys_stay_in_use_while_refetching_fails(
    jwks_server: JwksServer,
) -> None:
    key, rotated = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    serve(jwks_server, key)
    # No caching at all: every use refetches, as a cache past its TTL does.
    keys = JwksCache(jwks_server.url, ttl_s=0, refetch_min_interval_s=0)
    body = b"{}"
    assert (await webhooks.verify(signed(key, body), body, keys, tolerance_s=300)).request_id
    jwks_server.status, jwks_server.body = 500, b"down"
    assert (await webhooks.verify(signed(key, body), body, keys, tolerance_s=300)).request_id
    assert jwks_server.requests == 2  # the refetch failed; the last good keys verified
    # A new key appears (rotation): the refetch finds it, without a restart.
    serve(jwks_server, key, rotated)
    assert (await webhooks.verify(signed(rotated, body), body, keys, tolerance_s=300)).request_id
