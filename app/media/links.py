"""Signed, expiring URLs for media served by the app itself (the `local` backend).

A URL is `{PUBLIC_BASE_URL}/media/{key}?exp=<unix seconds>&sig=<HMAC-SHA256>` over the key
and the expiry, keyed by MEDIA_SIGNING_KEY, so any replica can check what another signed and
nobody can widen a URL to another key or a later expiry. Signed afresh on every read.
"""

import base64
import hashlib
import hmac
import time
from urllib.parse import quote


class LocalLinks:
    def __init__(self, base_url: str, signing_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = signing_key.encode()

    def _signature(self, key: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, key: str, ttl_s: int, *, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + ttl_s)
        query = f"exp={expires}&sig={self._signature(key, expires)}"
        return f"{self.base_url}/media/{quote(key)}?{query}"

    def verify(self, key: str, expires: int, signature: str, *, now: float | None = None) -> bool:
        """True when `signature` is ours for this key and expiry, and the expiry is ahead."""
        if expires < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(self._signature(key, expires), signature)
