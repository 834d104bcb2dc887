"""Sign-in with the frontend's own tokens: a JWT from its identity provider names a user.

PyJWT (`pyjwt[crypto]`) does the JOSE work: the most used and longest-kept JWT library in
Python, built on the `cryptography` we already depend on, with an algorithm allow-list on
every call and `PyJWK` binding each key to one algorithm. Its `PyJWKClient` fetches with
blocking urllib and refetches on every unknown `kid`, so the keys are fetched here instead:
with httpx, bounded by a timeout, cached, and refetched at most once per interval.

Algorithms are pinned by the key, never chosen by the token: a JWKS key verifies only with
the algorithm of its type (RSA ➜ RS256, EC P-256 ➜ ES256, Ed25519 ➜ EdDSA), the shared
secret only with HS256. With a JWKS configured no HS256 token is accepted (the IdP's RSA
public key used as an HMAC secret is the classic forgery), and `alg: none` is never allowed.
"""

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import jwt
from jwt.types import Options

from app.core.config import Settings
from app.core.errors import AppError, Unauthorized

logger = logging.getLogger(__name__)

# A JWS in compact form: three base64url segments (the third empty for `alg: none`, which
# is then refused as a JWT). API keys (`vg_` + base64url) hold no dot and never match.
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# The one algorithm each kind of JWKS key verifies with (RFC 7518 §3, RFC 8037 §3.1).
ALGORITHM_BY_KEY_TYPE: dict[tuple[object, object], str] = {
    ("RSA", None): "RS256",
    ("EC", "P-256"): "ES256",
    ("OKP", "Ed25519"): "EdDSA",
}
JWKS_ALGORITHMS = frozenset(ALGORITHM_BY_KEY_TYPE.values())
SECRET_ALGORITHM = "HS256"


class InvalidToken(Unauthorized):
    """A JWT that does not verify: the same `unauthorized` as a wrong API key."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class AuthProviderUnavailable(AppError):
    status, code, title = 503, "auth_provider_unavailable", "Identity provider unavailable"


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token takes the JWT path; costs an API key one `in` test."""
    return "." in token and _JWT_SHAPE.fullmatch(token) is not None


def _signing_key(jwk: Mapping[str, Any]) -> tuple[str, jwt.PyJWK] | None:
    """A JWK's `kid` and its key bound to its type's algorithm; None for a key we never
    verify with (no kid, encryption keys, other types, or published for another algorithm)."""
    kid = jwk.get("kid")
    algorithm = ALGORITHM_BY_KEY_TYPE.get((jwk.get("kty"), jwk.get("crv")))
    if not isinstance(kid, str) or not kid or algorithm is None:
        return None
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", algorithm) != algorithm:
        return None
    return kid, jwt.PyJWK(dict(jwk), algorithm)


class IdentityProviderKeys:
    """The IdP's public keys by `kid`, fetched lazily and kept for `ttl_s`.

    A token naming a `kid` we do not hold refetches (key rotation needs no restart), but
    never twice within `refetch_min_interval_s`: a flood of made-up kids costs the IdP one
    request per interval, and concurrent misses share one fetch. A failed fetch keeps the
    last good keys in use; only a key we cannot find then is 503 rather than 401.
    """

    def __init__(
        self, url: str, *, ttl_s: float, refetch_min_interval_s: float, timeout_s: float
    ) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.refetch_min_interval_s = refetch_min_interval_s
        self.timeout_s = timeout_s
        self.fetches = 0  # attempts, successful or not
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -math.inf  # last success
        self._tried_at = -math.inf  # last attempt
        self._last_error: str | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return time.monotonic() - self._fetched_at <= self.ttl_s

    def _may_fetch(self) -> bool:
        return time.monotonic() - self._tried_at >= self.refetch_min_interval_s

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key named `kid`; InvalidToken when the IdP has none, AuthProviderUnavailable
        when the IdP cannot be asked and no cached key will do."""
        key = self._keys.get(kid)
        if key is not None and self._fresh():
            return key
        if self._may_fetch():
            tried_at = self._tried_at
            async with self._lock:
                if self._tried_at == tried_at:  # no attempt ended while this request waited
                    await self._refresh()
            key = self._keys.get(kid)
        if key is not None:
            return key  # possibly stale: the IdP is unreachable or was asked moments ago
        if self._last_error is not None:
            raise AuthProviderUnavailable(
                f"the identity provider's keys could not be fetched ({self._last_error})",
                headers={"Retry-After": str(max(1, math.ceil(self.refetch_min_interval_s)))},
            )
        raise InvalidToken(f"no key {kid!r} in the identity provider's JWKS")

    async def _refresh(self) -> None:
        self.fetches += 1
        try:
            # httpx's timeout bounds each read; this bounds the whole fetch (a slow drip).
            async with asyncio.timeout(self.timeout_s):
                keys = await self._fetch()
        except (TimeoutError, httpx.HTTPError, ValueError, TypeError) as error:
            self._last_error = f"{type(error).__name__}: {error}"[:300]
            logger.warning("fetching the JWKS from %s failed: %s", self.url, self._last_error)
        else:
            self._keys = keys  # whole: a key the IdP dropped stops verifying
            self._fetched_at = time.monotonic()
            self._last_error = None
        finally:
            # Set when the attempt ends: requests that waited on the lock use its result.
            self._tried_at = time.monotonic()

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            response = await client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS (no `keys` list)")
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in document["keys"]:
            try:
                found = _signing_key(jwk) if isinstance(jwk, dict) else None
            except (jwt.PyJWTError, ValueError, KeyError, TypeError) as error:
                logger.warning("skipping a malformed key in %s: %s", self.url, error)
                continue
            if found is not None:
                keys[found[0]] = found[1]
        if not keys:
            raise ValueError("the JWKS holds no RS256, ES256 or EdDSA signing key with a kid")
        return keys


class TokenVerifier:
    """Turns a JWT into the `users.id` its `sub` names, or refuses it (InvalidToken)."""

    def __init__(self, settings: Settings) -> None:
        self.keys = (
            IdentityProviderKeys(
                settings.auth_jwks_url,
                ttl_s=settings.auth_jwks_cache_s,
                refetch_min_interval_s=settings.auth_jwks_refetch_min_interval_s,
                timeout_s=settings.auth_jwks_timeout_s,
            )
            if settings.auth_jwks_url
            else None
        )
        # Settings refuse both at once; were they both here, the JWKS would win.
        self.secret = None if self.keys is not None else (settings.auth_jwt_secret or None)
        self.issuer = settings.auth_issuer or None
        self.audience = settings.auth_audience or None
        self.leeway_s = settings.auth_leeway_s
        self.options: Options = {
            "require": ["exp", "sub"]
            + (["iss"] if self.issuer else [])
            + (["aud"] if self.audience else []),
            # With no AUTH_AUDIENCE, a token's `aud` (meant for someone) is not held against it.
            "verify_aud": self.audience is not None,
            "enforce_minimum_key_length": True,
        }

    async def user_id(self, token: str) -> uuid.UUID:
        """The user the token was issued for, once its signature, algorithm, issuer, audience
        and validity period hold."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken(f"malformed token: {error}") from error
        alg = header.get("alg")
        key: jwt.PyJWK | str
        if self.keys is not None:
            # Checked before any key is looked up: a token the JWKS could never verify
            # (HS256, none) costs the IdP nothing.
            if alg not in JWKS_ALGORITHMS:
                raise InvalidToken(f"alg {alg!r} is not accepted (RS256, ES256 or EdDSA)")
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise InvalidToken("the token names no key (`kid` header)")
            key = await self.keys.key(kid)
            algorithm = key.algorithm_name
        elif self.secret is not None:
            key, algorithm = self.secret, SECRET_ALGORITHM
        else:
            raise InvalidToken("this server accepts no JWTs (AUTH_JWKS_URL / AUTH_JWT_SECRET)")
        if alg != algorithm:
            raise InvalidToken(f"alg {alg!r} does not match the key's algorithm {algorithm}")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options=self.options,
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(f"invalid token: {error}") from error
        try:
            return uuid.UUID(claims["sub"])
        except ValueError as error:
            raise InvalidToken("the token's `sub` is not a user id") from error
