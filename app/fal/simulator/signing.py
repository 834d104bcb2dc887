"""Fal-style webhook signatures: Ed25519 over a canonical message, keys published as a JWKS.

The simulator holds its own key (persisted in the state directory, so a verifier that cached
our JWKS keeps working across restarts) and signs exactly what Fal signs (docs/fal.md, "Webhooks"):

    request_id + "\\n" + user_id + "\\n" + timestamp + "\\n" + sha256_hex(raw_body)

The signature travels hex-encoded in `X-Fal-Webhook-Signature`.
"""

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.fal.simulator.statefiles import PRIVATE_MODE, atomic_write, exclusive_lock

WEBHOOK_KEY_FILE = "webhook_ed25519.pem"


def signed_message(request_id: str, user_id: str, timestamp: str, raw_body: bytes) -> bytes:
    """The exact bytes Fal signs for a webhook delivery."""
    digest = hashlib.sha256(raw_body).hexdigest()
    return f"{request_id}\n{user_id}\n{timestamp}\n{digest}".encode()


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWK members are encoded (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class WebhookSigner:
    private_key: Ed25519PrivateKey

    @classmethod
    def load_or_create(cls, state_dir: Path) -> "WebhookSigner":
        """The signer for `state_dir`, minting and persisting a key on first use."""
        path = state_dir / WEBHOOK_KEY_FILE
        with exclusive_lock(state_dir, "signing"):
            if not path.exists():
                pem = Ed25519PrivateKey.generate().private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                atomic_write(path, pem, mode=PRIVATE_MODE)
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return cls(key)

    @property
    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def kid(self) -> str:
        """RFC 7638 thumbprint: stable for the key, so verifiers can cache by it."""
        canonical = json.dumps(
            {"crv": "Ed25519", "kty": "OKP", "x": b64url(self.public_bytes)},
            separators=(",", ":"),
            sort_keys=True,
        )
        return b64url(hashlib.sha256(canonical.encode()).digest())

    def jwks(self) -> dict[str, Any]:
        """The document served at `/.well-known/jwks.json`."""
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": b64url(self.public_bytes),
                    "kid": self.kid,
                    "use": "sig",
                    "alg": "EdDSA",
                }
            ]
        }

    def sign(self, request_id: str, user_id: str, timestamp: str, raw_body: bytes) -> str:
        """Hex of the 64-byte signature over the canonical message."""
        message = signed_message(request_id, user_id, timestamp, raw_body)
        return self.private_key.sign(message).hex()
