"""Idempotency-Key handling: the HTTP part (http.py), the table (repository.py), and running a
write once per key (claims.py)."""

from app.core.idempotency.claims import in_flight, replay_on_driver, run_once
from app.core.idempotency.http import (
    IDEMPOTENCY_ERRORS,
    REPLAY_HEADER,
    IdempotencyKey,
    IdempotencyKeyInFlight,
    IdempotencyKeyInvalid,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    KeyedRequest,
    Outcome,
    fingerprint,
    require_idempotency_key,
)
from app.core.idempotency.repository import CLAIM

__all__ = [
    "CLAIM",
    "IDEMPOTENCY_ERRORS",
    "REPLAY_HEADER",
    "IdempotencyKey",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyInvalid",
    "IdempotencyKeyMissing",
    "IdempotencyKeyReused",
    "KeyedRequest",
    "Outcome",
    "fingerprint",
    "in_flight",
    "replay_on_driver",
    "require_idempotency_key",
    "run_once",
]
