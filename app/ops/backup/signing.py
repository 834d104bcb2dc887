"""BACKUP_SIGNING_KEY: an HMAC-SHA256 of each backup's bytes, kept in its metadata.

The `.sha256` sidecar catches damage, but whoever can rewrite a dump can rewrite its sidecar
too. Without the key they cannot write a matching HMAC, so with it set, restore refuses any
backup whose HMAC is missing or wrong.
"""

import hashlib
import hmac

from app.core.config import get_settings


def configured_key() -> bytes | None:
    """BACKUP_SIGNING_KEY as bytes, or None when backups are not signed.

    Read from Settings here rather than passed in by callers, so no way into create, status
    or restore can skip the check by leaving the key out.
    """
    key = get_settings().backup_signing_key
    return key.encode() if key else None


def new_signer(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 to feed a backup's bytes as they are written or read."""
    return hmac.new(key, digestmod=hashlib.sha256)


def signature_matches(recorded: object, computed: str) -> bool:
    """Whether the metadata's `recorded` HMAC (anything a JSON file may hold) is `computed`."""
    return isinstance(recorded, str) and hmac.compare_digest(recorded.encode(), computed.encode())
