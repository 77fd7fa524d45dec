"""``labkit image build|verify|inspect`` (DESIGN.md section 5), run in a scratch folder so the
lab key is generated under ``<folder>/data/keys/`` on first use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.cli import COMMANDS, main
from labkit.repo.images import inspect_image


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_image_is_registered() -> None:
    assert "image" in COMMANDS


def test_build_verify_inspect(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = folder / "fw.bin"
    assert main(["image", "build", "--version", "2.0.0", "--size", "65536", "--out", str(out)]) == 0
    assert (folder / "data" / "keys" / "lab-ed25519.pem").exists()  # generated on first use
    assert "built" in capsys.readouterr().out
    assert inspect_image(out.read_bytes()).image_size == 65536

    assert main(["image", "verify", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"OK {out} version 2.0.0")

    assert main(["image", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "version: 2.0.0" in text and "signature_type: ED25519" in text

    assert main(["image", "inspect", "--json", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "2.0.0"


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ("corrupt", "bad hash"),
        ("wrong-key", "bad signature"),
        ("unsigned", "no signature"),
        ("truncated", "truncated"),
        ("not-an-image", "bad magic"),
    ],
)
def test_broken_images_fail_verification(
    folder: Path, capsys: pytest.CaptureFixture[str], broken: str, reason: str
) -> None:
    out = folder / f"{broken}.bin"
    argv = ["image", "build", "--version", "2.0.0", "--size", "4096", "--out", str(out)]
    assert main([*argv, "--broken", broken]) == 0
    capsys.readouterr()
    assert main(["image", "verify", str(out)]) == 1
    assert reason in capsys.readouterr().out


def test_too_large_needs_the_slot_size(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = folder / "big.bin"
    argv = ["image", "build", "--version", "1.0.0", "--size", "4096", "--out", str(out)]
    assert main([*argv, "--broken", "too-large"]) == 0
    assert main(["image", "verify", str(out)]) == 0  # a signature check cannot see it
    assert main(["image", "verify", str(out), "--slot-size", "4096"]) == 1
    assert "too large" in capsys.readouterr().out


def test_an_explicit_key_and_a_foreign_one(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["image", "build", "--version", "1.0.0", "--size", "10", "--out", "a.bin"])
    key = folder / "data" / "keys" / "lab-ed25519.pem"
    other = folder / "other"
    other.mkdir()
    argv = ["image", "build", "--version", "1.2.3", "--size", "100", "--out", "b.bin"]
    assert main([*argv, "--key", str(key)]) == 0
    assert main(["image", "verify", "b.bin", "--key", str(key)]) == 0
    foreign = ["image", "build", "--version", "1.0.0", "--size", "100", "--key-kind", "ecdsa-p256"]
    assert main([*foreign, "--out", "c.bin"]) == 0
    assert main(["image", "verify", "c.bin", "--key", str(key)]) == 1
    capsys.readouterr()


def test_usage_and_io_errors(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["image", "build", "--version", "2.0.0", "--out", "x.bin"])  # no --size
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["image", "build", "--version", "2", "--size", "1", "--out", "x", "--broken", "bad"])
    assert exc.value.code == 2
    assert main(["image", "verify", "missing.bin"]) == 1
    assert main(["image", "build", "--version", "not.a.version!", "--size", "1", "--out", "x"]) == 1
    (folder / "noise.bin").write_bytes(b"hello")
    assert main(["image", "inspect", "noise.bin"]) == 1
    assert "bad magic" in capsys.readouterr().out
