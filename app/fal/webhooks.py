"""Verifying Fal's signed webhooks (FAL.md "Webhooks"): Ed25519 over the raw body's hash.

Nothing in a webhook is read before its signature checks out against a key from Fal's
JWKS. Keys are cached; an unknown signer triggers a refetch, at most once a minute.
"""

import asyncio
import base64
import hashlib
import time
from dataclasses import dataclass

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.datastructures import Headers

from app.core.errors import Unauthorized

REQUEST_ID = "x-fal-webhook-request-id"
USER_ID = "x-fal-webhook-user-id"
TIMESTAMP = "x-fal-webhook-timestamp"
SIGNATURE = "x-fal-webhook-signature"


class InvalidWebhook(Unauthorized):
    code, title = "invalid_webhook_signature", "Webhook not verified"


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class JwksCache:
    """Fal's public keys, fetched lazily and kept for `ttl_s`."""

    def __init__(self, url: str, *, ttl_s: float, refetch_min_interval_s: float) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.refetch_min_interval_s = refetch_min_interval_s
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    def _due(self, after_miss: bool) -> bool:
        age = time.monotonic() - self._fetched_at
        return age > self.ttl_s or (after_miss and age > self.refetch_min_interval_s)

    async def keys(self, *, after_miss: bool = False) -> list[Ed25519PublicKey]:
        """The cached keys; refetched when stale, or after a miss (at most once a minute)."""
        if self._due(after_miss):
            async with self._lock:
                if self._due(after_miss):  # another request may have just refetched
                    await self._fetch()
        return self._keys

    async def _fetch(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(self.url)
            response.raise_for_status()
        keys = []
        for jwk in response.json().get("keys", []):
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "x" in jwk:
                keys.append(Ed25519PublicKey.from_public_bytes(_b64url(jwk["x"])))
        self._keys = keys
        self._fetched_at = time.monotonic()


@dataclass(frozen=True)
class VerifiedWebhook:
    request_id: str
    body: bytes


def _signed_message(headers: Headers, body: bytes) -> tuple[bytes, bytes, str]:
    values = [headers.get(name) for name in (REQUEST_ID, USER_ID, TIMESTAMP, SIGNATURE)]
    request_id, user_id, timestamp, signature_hex = values
    if not (request_id and user_id and timestamp and signature_hex):
        raise InvalidWebhook("missing X-Fal-Webhook-* headers")
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError as error:
        raise InvalidWebhook("signature is not hex") from error
    digest = hashlib.sha256(body).hexdigest()
    message = f"{request_id}\n{user_id}\n{timestamp}\n{digest}".encode()
    return message, signature, request_id


async def verify(
    headers: Headers, body: bytes, jwks: JwksCache, *, tolerance_s: int
) -> VerifiedWebhook:
    """The webhook's request id if the signature and timestamp hold; InvalidWebhook if not."""
    message, signature, request_id = _signed_message(headers, body)
    try:
        timestamp = int(headers[TIMESTAMP])
    except ValueError as error:
        raise InvalidWebhook("timestamp is not an integer") from error
    if abs(time.time() - timestamp) > tolerance_s:
        raise InvalidWebhook(f"timestamp is more than {tolerance_s}s away from now")
    try:
        keys = await jwks.keys()
        if not _any_key_verifies(keys, signature, message):
            keys = await jwks.keys(after_miss=True)
            if not _any_key_verifies(keys, signature, message):
                raise InvalidWebhook("signature does not verify against Fal's keys")
    except httpx.HTTPError as error:
        # Without keys nothing can be trusted; Fal retries deliveries, so refusing is safe.
        raise InvalidWebhook(f"could not fetch Fal's keys: {type(error).__name__}") from error
    return VerifiedWebhook(request_id=request_id, body=body)


def _any_key_verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False
