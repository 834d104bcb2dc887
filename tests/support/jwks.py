"""A stand-in for a frontend's identity provider: real keys, tokens signed with them, and their
JWKS served over real HTTP on 127.0.0.1.

The JWKs are written out here from the keys' numbers, not by the JOSE library under test.
"""

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(value: int, size: int | None = None) -> str:
    return b64url(value.to_bytes(size or (value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str  # RS256 | ES256 | EdDSA
    private: PrivateKey

    def jwk(self) -> dict[str, str]:
        """The public key as the IdP publishes it (RFC 7517, RFC 8037)."""
        public = self.private.public_key()
        base = {"kid": self.kid, "use": "sig"}
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return {**base, "kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
        if isinstance(public, ec.EllipticCurvePublicKey):
            point = public.public_numbers()
            x, y = _uint(point.x, 32), _uint(point.y, 32)
            return {**base, "kty": "EC", "crv": "P-256", "x": x, "y": y}
        raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {**base, "kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid, **header}
        )


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def ed25519_key(kid: str) -> SigningKey:
    return SigningKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token put together by hand, for what no library will sign (`alg: none`, forgeries)."""
    return ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    ) + "." + b64url(signature)  # fmt: skip


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token signed with `secret`, whatever it is (a public key, in a forgery)."""
    unsigned = compact(header, claims).removesuffix(".")
    signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(signature)}"


def claims_for(
    user_id: uuid.UUID | str, issuer: str, audience: str, **extra: Any
) -> dict[str, Any]:
    """Claims valid for five minutes; an `extra` claim set to None is left out."""
    now = int(time.time())
    claims = {"sub": str(user_id), "iss": issuer, "aud": audience, "iat": now, "exp": now + 300}
    claims.update(extra)
    return {name: value for name, value in claims.items() if value is not None}


class JwksServer:
    """Serves the JWKS of `serve(...)`'s keys, or fails with `fail(status)`; counts requests."""

    def __init__(self) -> None:
        self.body = b'{"keys": []}'
        self.status = 200
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"

    def serve(self, *keys: SigningKey) -> None:
        self.serve_jwks([key.jwk() for key in keys])

    def serve_jwks(self, jwks: list[dict[str, Any]]) -> None:
        """Serve these JWKs as they are (e.g. Fal's webhook keys: Ed25519, no `kid`)."""
        self.status = 200
        self.body = json.dumps({"keys": jwks}).encode()

    def fail(self, status: int = 503) -> None:
        self.status = status
        self.body = b'{"error": "unavailable"}'


@contextmanager
def jwks_server(*keys: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer()
    server.serve(*keys)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join()


@contextmanager
def unresponsive_url() -> Iterator[str]:
    """A URL whose server accepts the connection (the kernel does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/.well-known/jwks.json"
