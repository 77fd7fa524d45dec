"""labkit.security_cli: ``labkit serve --listen coaps:// --psk-file`` with ``labkit device``
over DTLS-PSK (two processes), and the parsing of listen addresses and key entries."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

import pytest

from labkit.dtls import dtls_available
from labkit.security_cli import listen_address, psk_store_from_args
from tests.test_cli import labkit_proc

KEY_HEX = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def test_listen_address_and_psk_file(tmp_path: Path) -> None:
    assert listen_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert listen_address("coaps://[::1]:5684").scheme == "coaps"
    with pytest.raises(argparse.ArgumentTypeError):
        listen_address("https://127.0.0.1:1")
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# lab keys\nep-1:id-1:{KEY_HEX}\n\nep-2:id-2:00ff\n")
    store = psk_store_from_args(argparse.Namespace(psk=[], psk_file=[keys]))
    assert sorted(store) == ["ep-1", "ep-2"] and store["ep-2"].key == b"\x00\xff"
    keys.write_text("ep-1:id-1:zz\n")
    with pytest.raises(ValueError, match=r"keys.txt:1") as info:
        psk_store_from_args(argparse.Namespace(psk=[], psk_file=[keys]))
    assert "zz" not in str(info.value)


@pytest.mark.skipif(not dtls_available(), reason="DTLSSocket is not installed")
def test_serve_on_coaps_with_a_psk_file_and_a_device(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"cli-sec-1:cli-sec-1-id:{KEY_HEX}\n")
    with labkit_proc("serve", "--listen", "coaps://127.0.0.1:0", "--psk-file", str(keys)) as serve:
        uri = serve.expect(r"^listening on (coaps://127\.0\.0\.1:\d+)$", timeout=30).group(1)
        with labkit_proc(
            "device", "--server", uri, "--endpoint", "cli-sec-1",
            "--psk-identity", "cli-sec-1-id", "--psk-key", KEY_HEX,
        ) as device:  # fmt: skip
            device.expect(rf"^registered cli-sec-1 to {uri} from 127\.0\.0\.1:\d+")
            serve.expect(r"^registered cli-sec-1 from 127\.0\.0\.1:\d+ lt=300")
            device.signal(signal.SIGINT)
            assert device.wait(timeout=20) == 0
        serve.signal(signal.SIGTERM)
        assert serve.wait(timeout=20) == 0
    assert not any(KEY_HEX in line for line in serve.lines + device.lines)
