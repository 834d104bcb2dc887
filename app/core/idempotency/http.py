"""Idempotency-Key at the HTTP edge: the header, its errors, and what a keyed request is."""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app.core.errors import AppError

REPLAY_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# What `require_idempotency_key` accepts, for the OpenAPI document: a required, non-null
# string. The signature keeps it optional only so that a missing key is our 400, not a 422.
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_KEY_LENGTH,
    "pattern": "^[!-~]+$",
}


class IdempotencyKeyMissing(AppError):
    status, code, title = 400, "idempotency_key_missing", "Idempotency-Key header required"


class IdempotencyKeyInvalid(AppError):
    status, code, title = 400, "idempotency_key_invalid", "Malformed Idempotency-Key"


class IdempotencyKeyReused(AppError):
    status, code, title = (
        422,
        "idempotency_key_reused",
        "Idempotency-Key reused with another request",
    )


class IdempotencyKeyInFlight(AppError):
    status, code, title = 409, "idempotency_key_in_flight", "Request with this key in progress"


IDEMPOTENCY_ERRORS = (
    IdempotencyKeyMissing,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    IdempotencyKeyInFlight,
)


async def require_idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1-255 visible ASCII characters, unique per intended operation",
        ),
    ] = None,
) -> str:
    if idempotency_key is None:
        raise IdempotencyKeyMissing("this endpoint requires an Idempotency-Key header")
    if not 1 <= len(idempotency_key) <= MAX_KEY_LENGTH or not all(
        "!" <= ch <= "~" for ch in idempotency_key
    ):
        raise IdempotencyKeyInvalid("Idempotency-Key must be 1-255 visible ASCII characters")
    return idempotency_key


IdempotencyKey = Annotated[str, Depends(require_idempotency_key)]


def fingerprint(method: str, path: str, body: BaseModel) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
    status: int
    body: str
    replayed: bool

    def response(self) -> Response:
        headers = {REPLAY_HEADER: "true"} if self.replayed else None
        return Response(self.body, self.status, headers, media_type="application/json")


@dataclass(frozen=True)
class KeyedRequest:
    """A write request as its Idempotency-Key binds it: who, which key, and what was asked."""

    scope: str
    key: str
    method: str
    path: str
    fingerprint: str

    @classmethod
    def of(cls, request: Request, *, scope: str, key: str, body: BaseModel) -> "KeyedRequest":
        method, path = request.method, request.url.path
        return cls(scope, key, method, path, fingerprint(method, path, body))

    def claim_params(self, wait_s: float) -> dict[str, str]:
        return {
            "scope": self.scope,
            "key": self.key,
            "method": self.method,
            "path": self.path,
            "fingerprint": self.fingerprint,
            "wait_ms": str(int(wait_s * 1000)),
        }

    def replay(self, stored: Mapping[str, Any] | asyncpg.Record) -> Outcome:
        """The stored outcome, if the key was first used for this very request."""
        if (stored["method"], stored["path"], stored["fingerprint"]) != (
            self.method,
            self.path,
            self.fingerprint,
        ):
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request; "
                "use a new key for a new request"
            )
        return Outcome(stored["responseStatus"], stored["responseBody"], replayed=True)
