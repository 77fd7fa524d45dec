"""MCUboot images built and checked with imgtool: keys, versions, broken variants, inspection."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.repo import images
from labkit.repo.images import (
    BROKEN,
    KEY_KINDS,
    REASONS,
    ImageFormatError,
    build_image,
    default_keys_dir,
    ensure_key,
    firmware_payload,
    inspect_image,
    public_key,
    verify_image,
)

SIZE = 10_000


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_build_and_verify_ok(kind: str, keys: Path) -> None:
    key = ensure_key(kind, keys)
    data = build_image(version="1.2.3", size=SIZE, key=key)
    result = verify_image(data, key=key)
    assert result.ok, result
    assert result.reason == "ok"
    assert result.version == "1.2.3"
    # the bootloader only needs the public half
    assert verify_image(data, key=public_key(kind, keys)).ok


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_default_key_lives_in_data_keys_and_is_trusted_by_default(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_keys_dir() == tmp_path / "data" / "keys"
    data = build_image(version="0.9.1", size=2048, key_kind=kind)
    assert (tmp_path / "data" / "keys" / f"lab-{kind}.pem").exists()
    result = verify_image(data)  # picks the lab key of the image's signature type
    assert result.ok and result.version == "0.9.1"


def test_build_number_is_kept(keys: Path) -> None:
    key = ensure_key("ed25519", keys)
    data = build_image(version="2.0.1+7", size=100, key=key)
    assert verify_image(data, key=key).version == "2.0.1+7"
    info = inspect_image(data)
    assert info.imgtool_version == "2.0.1+7"
    assert inspect_image(build_image(version="2.0", size=1, key=key)).imgtool_version == "2.0.0+0"


EXPECTED_REASON = {
    "corrupt": "bad hash",
    "wrong-key": "bad signature",
    "unsigned": "no signature",
    "truncated": "truncated",
    "not-an-image": "bad magic",
    "too-large": "too large",
}


@pytest.mark.parametrize("kind", KEY_KINDS)
@pytest.mark.parametrize("broken", BROKEN)
def test_each_broken_variant_fails_for_its_reason(kind: str, broken: str, keys: Path) -> None:
    key = ensure_key(kind, keys)
    slot = 8192
    data = build_image(version="1.0.0", size=4096, key=key, slot_size=slot, broken=broken)
    result = verify_image(data, key=key, slot_size=slot)
    assert not result.ok
    assert result.reason == EXPECTED_REASON[broken], result
    assert result.reason in REASONS
    assert result.detail


def test_too_large_is_signed_and_only_a_slot_check_refuses_it(keys: Path) -> None:
    key = ensure_key("ed25519", keys)
    data = build_image(version="1.0.0", size=4096, key=key, broken="too-large")
    assert len(data) > 4096  # default slot: the size asked for
    assert verify_image(data, key=key).ok
    assert verify_image(data, key=key, slot_size=4096).reason == "too large"


def test_slot_size_refuses_an_image_that_does_not_fit(keys: Path) -> None:
    key = ensure_key("ed25519", keys)
    with pytest.raises(ValueError, match="exceeds"):
        build_image(version="1.0.0", size=8000, key=key, slot_size=8192)
    fitting = build_image(version="1.0.0", size=4000, key=key, slot_size=8192)
    assert verify_image(fitting, key=key, slot_size=8192).ok


def test_wrong_key_detail_and_key_type_mismatch(keys: Path) -> None:
    ed = ensure_key("ed25519", keys)
    ec = ensure_key("ecdsa-p256", keys)
    data = build_image(version="1.0.0", size=500, key=ed)
    result = verify_image(data, key=ec)
    assert result.reason == "bad signature"
    assert "ecdsa-p256" in result.detail


def test_keyhash_naming_another_key_is_refused(keys: Path) -> None:
    key = ensure_key("ed25519", keys)
    data = bytearray(build_image(version="1.0.0", size=500, key=key))
    info = inspect_image(bytes(data))
    at = bytes(data).index(bytes.fromhex(info.key_hash_hex or ""))
    data[at] ^= 0xFF  # the signature still verifies: only the key hash TLV lies
    result = verify_image(bytes(data), key=key)
    assert result.reason == "bad signature"
    assert "KEYHASH" in result.detail


def test_unknown_key_when_no_lab_key_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = build_image(version="1.0.0", size=100, key=ensure_key("ed25519", tmp_path / "k"))
    monkeypatch.chdir(tmp_path)  # no data/keys here
    result = verify_image(data)
    assert result.reason == "unknown key"
    assert not (tmp_path / "data" / "keys").exists()  # verification never creates keys


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_key_generated_once_with_mode_0600_and_reused(kind: str, keys: Path) -> None:
    first = ensure_key(kind, keys)
    content = first.read_bytes()
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in content
    again = ensure_key(kind, keys)
    assert again == first
    assert again.read_bytes() == content
    assert sorted(p.name for p in keys.iterdir()) == [f"lab-{kind}.pem"]  # no temp files left
    pub = public_key(kind, keys)
    assert b"PUBLIC KEY" in pub.read_bytes()


def test_unknown_key_kind_is_refused(keys: Path) -> None:
    with pytest.raises(ValueError, match="key kind"):
        ensure_key("rsa-1024", keys)


def test_payload_is_deterministic(keys: Path) -> None:
    assert firmware_payload("1.2.3", 5000, seed=1) == firmware_payload("1.2.3", 5000, seed=1)
    assert firmware_payload("1.2.3", 5000, seed=1) != firmware_payload("1.2.3", 5000, seed=2)
    assert firmware_payload("1.2.3", 5000, seed=1) != firmware_payload("1.2.4", 5000, seed=1)
    assert firmware_payload("1.2.3", 100, seed=1) == firmware_payload("1.2.3", 5000, seed=1)[:100]
    assert len(firmware_payload("1.2.3", 3)) == 3


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_same_seed_and_version_give_the_same_payload(kind: str, keys: Path) -> None:
    key = ensure_key(kind, keys)
    a = build_image(version="3.1.4", size=SIZE, key=key, seed=7)
    b = build_image(version="3.1.4", size=SIZE, key=key, seed=7)
    hdr = inspect_image(a).header_size
    assert a[: hdr + SIZE] == b[: hdr + SIZE]
    assert inspect_image(a).hash_hex == inspect_image(b).hash_hex
    if kind == "ed25519":
        assert a == b  # Ed25519 signatures are deterministic; ECDSA ones are not
    c = build_image(version="3.1.4", size=SIZE, key=key, seed=8)
    assert c[hdr : hdr + SIZE] != a[hdr : hdr + SIZE]


def test_inspect_shows_what_the_header_and_tlvs_say(keys: Path) -> None:
    key = ensure_key("ed25519", keys)
    data = build_image(version="1.2.3", size=SIZE, key=key)
    info = inspect_image(data)
    assert info.magic == 0x96F3B83D
    assert info.header_size == 0x200
    assert info.image_size == SIZE
    assert info.version == "1.2.3"
    assert info.tlvs == ("SHA256", "KEYHASH", "ED25519")
    assert info.signed and info.signature_type == "ED25519"
    assert info.hash_alg == "SHA256"
    assert info.hash_hex == hashlib.sha256(data[: 0x200 + SIZE]).hexdigest()
    assert info.total_size == info.file_size == len(data)
    assert info.flags == 0 and info.flag_names == ()
    assert "1.2.3" in info._repr_html_()
    unsigned = inspect_image(build_image(version="1.2.3", size=10, broken="unsigned"))
    assert not unsigned.signed and unsigned.tlvs == ("SHA256",)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "bad magic"),
        (b"hello, this is not firmware", "bad magic"),
        (bytes.fromhex("3db8f396") + bytes(10), "truncated"),
    ],
)
def test_inspect_and_verify_refuse_non_images(data: bytes, reason: str) -> None:
    with pytest.raises(ImageFormatError) as caught:
        inspect_image(data)
    assert caught.value.reason == reason
    result = verify_image(data)
    assert not result.ok and result.reason == reason and result.version is None


def test_out_writes_the_same_bytes(keys: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "app.bin"
    data = build_image(version="1.0.0", size=300, key=ensure_key("ed25519", keys), out=out)
    assert out.read_bytes() == data


def test_bad_arguments_are_refused(keys: Path) -> None:
    key = ensure_key("ed25519", keys)
    with pytest.raises(ValueError, match="version"):
        build_image(version="v1", size=10, key=key)
    with pytest.raises(ValueError, match="broken"):
        build_image(version="1.0.0", size=10, key=key, broken="scrambled")
    with pytest.raises(ValueError, match="size"):
        build_image(version="1.0.0", size=-1, key=key)
    with pytest.raises(ValueError, match="header_size"):
        build_image(version="1.0.0", size=10, key=key, header_size=16)
    with pytest.raises(ValueError, match="public key only"):
        build_image(version="1.0.0", size=10, key=public_key("ed25519", keys))


@pytest.fixture(scope="module")
def signed_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    key = ensure_key("ed25519", tmp_path_factory.mktemp("keys"))
    return build_image(version="1.0.0", size=2000, key=key), key


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=3000))
def test_verify_never_raises_on_garbage(data: bytes) -> None:
    result = verify_image(data, key=None)
    assert result.reason in REASONS
    assert not result.ok


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_of_header_or_payload_is_refused(
    signed_image: tuple[bytes, Path], position: int, flip: int
) -> None:
    data, key = signed_image
    tampered = bytearray(data)
    tampered[position % (0x200 + 2000)] ^= flip
    result = verify_image(bytes(tampered), key=key)
    assert not result.ok
    assert result.reason in REASONS


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cut=st.integers(min_value=0))
def test_any_truncation_is_refused(signed_image: tuple[bytes, Path], cut: int) -> None:
    data, key = signed_image
    result = verify_image(data[: cut % len(data)], key=key)
    assert not result.ok
    assert result.reason in ("truncated", "bad magic", "bad tlv")


def test_module_lists_match_the_design() -> None:
    assert set(images.BROKEN) == {
        "corrupt",
        "wrong-key",
        "unsigned",
        "truncated",
        "not-an-image",
        "too-large",
    }


@pytest.mark.parametrize("memfd", [True, False], ids=["in-memory-file", "temporary-directory"])
def test_verification_reads_the_same_bytes_from_either_kind_of_file(
    memfd: bool, keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not memfd:
        monkeypatch.setattr(images, "_memfd_with", lambda data: None)
    else:
        probe = images._memfd_with(b"x")
        if probe is None:
            pytest.skip("no memfd on this system")
        os.close(probe)
    key = ensure_key("ed25519", keys)
    data = build_image(version="1.2.3", size=SIZE, key=key)
    assert verify_image(data, key=key).ok
    corrupt = bytearray(data)
    corrupt[0x200 + 17] ^= 0x01  # one payload bit
    assert verify_image(bytes(corrupt), key=key).reason == "bad hash"
    other = ensure_key("ecdsa-p256", keys)
    assert verify_image(data, key=other).reason == "bad signature"
