"""``Lab(security="psk")`` and ``Lab(bootstrap=True)``: devices over DTLS-PSK and from a
Bootstrap server, through the synchronous lab API (loopback, ephemeral ports)."""

from __future__ import annotations

import pytest

from labkit.dtls import dtls_available
from labkit.runtime import Lab

pytestmark = pytest.mark.skipif(not dtls_available(), reason="DTLSSocket is not installed")


def test_psk_lab_registers_over_dtls_and_a_wrong_key_fails_on_purpose() -> None:
    with Lab(security="psk") as lab:
        good = lab.add_device("psk-good")
        assert good.read("/3/0/3") == "1.0.0"
        with pytest.raises(TimeoutError):
            lab.add_device("psk-bad", psk_key=b"not-my-key-0001", timeout=3, request_timeout=2)
        events = lab.events()
    security = events[(events.kind == "security") & (events.source == "server")]
    assert set(security[security.device == "psk-good"].reason) == {"ok"}
    assert "bad_key" in set(security[security.device == "psk-bad"].reason)
    assert not ((events.kind == "registered") & (events.device == "psk-bad")).any()


@pytest.mark.parametrize("security", ["nosec", "psk"])
def test_bootstrap_lab(security: str) -> None:
    with Lab(bootstrap=True, security=security) as lab:
        dev = lab.add_device("bs-lab", timeout=15)
        assert dev.read("/3/0/3") == "1.0.0"
        events = lab.events()
    ops = events[(events.kind == "bootstrap") & (events.source == "bootstrap")].method.tolist()
    assert ops[0] == "Bootstrap-Request" and ops[-2:] == ["Bootstrap-Finish", "Bootstrap"]
    registered = events[(events.kind == "registered") & (events.source == "server")]
    assert list(registered.device) == ["bs-lab"]
