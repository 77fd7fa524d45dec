"""labkit.tls: the lab certificate is made once, kept private, and verifies for loopback."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

from cryptography import x509

from labkit.tls import client_context, ensure_certificate, server_context


def test_certificate_is_made_once_private_and_names_loopback(tmp_path: Path) -> None:
    cert, key = ensure_certificate(tmp_path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = cert.read_bytes()
    assert ensure_certificate(tmp_path) == (cert, key) and cert.read_bytes() == first
    parsed = x509.load_pem_x509_certificate(first)
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert isinstance(server_context(tmp_path), ssl.SSLContext)
    ctx = client_context(cert)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
