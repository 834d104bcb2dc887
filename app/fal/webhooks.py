"""Verifying Fal's signed webhooks (docs/fal.md, "Webhooks"): Ed25519 over the raw body's hash.

Nothing in a webhook is read before its signature checks out against a key from Fal's
JWKS. Keys are cached; an unknown signer triggers a refetch, at most once a minute.
"""

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from dataclasses import dataclass

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.datastructures import Headers

from app.core.errors import Unauthorized

logger = logging.getLogger(__name__)
REQUEST_ID = "x-fal-webhook-request-id"
USER_ID = "x-fal-webhook-user-id"
TIMESTAMP = "x-fal-webhook-timestamp"
SIGNATURE = "x-fal-webhook-signature"


class InvalidWebhook(Unauthorized):
    code, title = "invalid_webhook_signature", "Webhook not verified"


def _b64url(data: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except binascii.Error as error:
        raise ValueError(f"a key is not base64url: {error}") from error


class JwksUnavailable(Exception):
    """No usable keys: the fetch failed (or is backing off after a failure) and none are cached."""


class JwksCache:
    """Fal's public keys, fetched lazily and kept for `ttl_s`.

    A failed fetch (network, HTTP error, or a body that is not a JWKS with an Ed25519 key)
    keeps the last good keys in use and is not retried for `refetch_min_interval_s`, so an
    outage of Fal's key endpoint costs one fetch a minute, not one per webhook.
    """

    def __init__(self, url: str, *, ttl_s: float, refetch_min_interval_s: float) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.refetch_min_interval_s = refetch_min_interval_s
        self.fetches = 0  # attempts, for tests and metrics
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at = float("-inf")  # last success
        self._tried_at = float("-inf")  # last attempt, successful or not
        self._last_error: str | None = None
        self._lock = asyncio.Lock()

    def _due(self, after_miss: bool) -> bool:
        now = time.monotonic()
        if now - self._tried_at <= self.refetch_min_interval_s:
            return False  # just tried (and either got these keys or is backing off)
        return now - self._fetched_at > self.ttl_s or after_miss

    async def keys(self, *, after_miss: bool = False) -> list[Ed25519PublicKey]:
        """The cached keys; refetched when stale, or after a miss (at most once a minute)."""
        if self._due(after_miss):
            async with self._lock:
                if self._due(after_miss):  # another request may have just refetched
                    await self._refresh()
        if not self._keys:
            raise JwksUnavailable(self._last_error or "no keys fetched yet")
        return self._keys

    async def _refresh(self) -> None:
        # The attempt's time is set when it ends: callers that arrive meanwhile wait on the
        # lock for its keys instead of finding none (the first webhooks after a start).
        self.fetches += 1
        try:
            self._keys = await self._fetch()
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as error:
            self._last_error = f"{type(error).__name__}: {error}"[:300]
            logger.warning("fetching Fal's JWKS from %s failed: %s", self.url, self._last_error)
            return
        finally:
            self._tried_at = time.monotonic()
        self._fetched_at = self._tried_at
        self._last_error = None

    async def _fetch(self) -> list[Ed25519PublicKey]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(self.url)
            response.raise_for_status()
        keys = []
        for jwk in response.json()["keys"]:
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "x" in jwk:
                keys.append(Ed25519PublicKey.from_public_bytes(_b64url(jwk["x"])))
        if not keys:
            raise ValueError("the JWKS holds no Ed25519 key")
        return keys


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
    headers: Headers,
    body: bytes,
    jwks: JwksCache,
    *,
    tolerance_s: int,
    expected_user_id: str | None = None,
) -> VerifiedWebhook:
    """The webhook's request id if the signature and timestamp hold; InvalidWebhook if not.

    With `expected_user_id` (FAL_WEBHOOK_USER_ID), a webhook signed for another Fal account
    is refused too: signed by Fal, but not about our jobs.
    """
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
    except JwksUnavailable as error:
        # Without keys nothing can be trusted; Fal retries deliveries, so refusing is safe.
        raise InvalidWebhook(f"could not fetch Fal's keys: {error}") from error
    if expected_user_id is not None and headers[USER_ID] != expected_user_id:
        raise InvalidWebhook("webhook is signed for another Fal user id")
    return VerifiedWebhook(request_id=request_id, body=body)


def _any_key_verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False
