"""The lab's TLS certificate for ``https://`` downloads, generated on first use.

Like the signing keys (:func:`labkit.repo.images.default_keys_dir`), the certificate and its
private key live in ``data/keys/`` under the current directory (``lab-tls.crt``,
``lab-tls.key``, mode 0600) and are never committed. It is a self-signed ECDSA P-256
certificate for ``localhost``, ``127.0.0.1`` and ``::1`` (subjectAltName), valid for ten
years: the repository serves HTTPS with it, and a simulated device trusts exactly this
certificate (a device of the real world would trust its vendor's CA instead; give it that
file).

This module owns only files and :class:`ssl.SSLContext` objects; no sockets.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

__all__ = ["cert_paths", "client_context", "ensure_certificate", "server_context"]

_HOSTS = ("localhost", "127.0.0.1", "::1")


def cert_paths(keys_dir: str | Path | None = None) -> tuple[Path, Path]:
    """(certificate, private key) paths in ``keys_dir`` (default ``data/keys``)."""
    from labkit.repo.images import default_keys_dir

    base = Path(keys_dir) if keys_dir is not None else default_keys_dir()
    return base / "lab-tls.crt", base / "lab-tls.key"


def ensure_certificate(keys_dir: str | Path | None = None) -> tuple[Path, Path]:
    """The lab certificate and key, made now if they do not exist yet."""
    cert_file, key_file = cert_paths(keys_dir)
    if cert_file.exists() and key_file.exists():
        return cert_file, key_file
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "labkit lab repository")])
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    sans += [x509.IPAddress(ipaddress.ip_address(h)) for h in _HOSTS[1:]]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    tmp_key = key_file.with_name(f"{key_file.name}.tmp{os.getpid()}")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    tmp_cert = cert_file.with_name(f"{cert_file.name}.tmp{os.getpid()}")
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if cert_file.exists() and key_file.exists():  # another process won the race: keep its pair
        tmp_key.unlink()
        tmp_cert.unlink()
    else:
        os.replace(tmp_key, key_file)
        os.replace(tmp_cert, cert_file)
    return cert_file, key_file


def server_context(keys_dir: str | Path | None = None) -> ssl.SSLContext:
    """A TLS server context with the lab certificate (TLS 1.2 or newer)."""
    cert_file, key_file = ensure_certificate(keys_dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def client_context(cafile: str | Path | None = None) -> ssl.SSLContext:
    """A verifying TLS client context trusting ``cafile`` (default: the lab certificate
    in ``data/keys`` if it exists, else the system's trust store)."""
    if cafile is None:
        lab_cert, _ = cert_paths()
        cafile = lab_cert if lab_cert.exists() else None
    ctx = ssl.create_default_context(cafile=str(cafile) if cafile is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
