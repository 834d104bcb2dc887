"""API keys: shown once, stored as sha256, compared in constant time."""

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "vg_"


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    # Keys carry 256 bits of entropy, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(api_key.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
