"""A private CA and a 127.0.0.1 server certificate, so the real fal-client can reach us.

fal-client always builds `https://` URLs, so the simulator must speak TLS. Trusting our own
CA through `SSL_CERT_FILE` (in the client process only) is less invasive than disabling
verification, and exercises the same code path as production.

Files live in the state directory and are reused across restarts, so a CA file handed to a
long-running client stays valid.
"""

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.fal.simulator.statefiles import PRIVATE_MODE, PUBLIC_MODE, atomic_write, exclusive_lock

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"

LOOPBACK_IP = ipaddress.IPv4Address("127.0.0.1")
LOOPBACK_DNS = "localhost"
CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=825)
# Regenerate a server certificate this close to expiry rather than fail mid-session.
RENEW_BEFORE = dt.timedelta(days=7)


@dataclass(frozen=True)
class CertificatePaths:
    ca_file: Path
    cert_file: Path
    key_file: Path


def ensure_certificates(state_dir: Path) -> CertificatePaths:
    """Create (or reuse) the CA and server certificate under `state_dir`."""
    paths = CertificatePaths(
        ca_file=state_dir / CA_FILE,
        cert_file=state_dir / SERVER_CERT_FILE,
        key_file=state_dir / SERVER_KEY_FILE,
    )
    with exclusive_lock(state_dir, "certs"):
        ca_key_file = state_dir / CA_KEY_FILE
        if not (_usable(paths.ca_file, is_ca=True) and ca_key_file.exists()):
            ca_key = ec.generate_private_key(ec.SECP256R1())
            _write_private(ca_key_file, _key_pem(ca_key))
            _write_public(paths.ca_file, _make_ca(ca_key).public_bytes(serialization.Encoding.PEM))
            # A new CA invalidates any server certificate signed by the old one.
            paths.cert_file.unlink(missing_ok=True)
        if not (_usable(paths.cert_file, is_ca=False) and paths.key_file.exists()):
            ca_key = _load_ec_key(ca_key_file)
            ca_cert = x509.load_pem_x509_certificate(paths.ca_file.read_bytes())
            server_key = ec.generate_private_key(ec.SECP256R1())
            server_cert = _make_server(server_key, ca_cert, ca_key)
            _write_private(paths.key_file, _key_pem(server_key))
            _write_public(paths.cert_file, server_cert.public_bytes(serialization.Encoding.PEM))
    return paths


def _make_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vidgen Fal simulator local CA")])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_server(
    key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK_DNS)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(LOOPBACK_IP), x509.DNSName(LOOPBACK_DNS)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _usable(cert_file: Path, *, is_ca: bool) -> bool:
    """Whether an existing certificate can be kept: parseable, right kind, not near expiry."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        ca_flag = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return ca_flag is is_ca and cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} does not hold an EC private key")
    return key


def _write_private(path: Path, data: bytes) -> None:
    atomic_write(path, data, mode=PRIVATE_MODE)


def _write_public(path: Path, data: bytes) -> None:
    atomic_write(path, data, mode=PUBLIC_MODE)
