"""labkit.course.l06_secure_boot_and_rollback:
the helpers and exercises of notebook 06_secure_boot_and_rollback;
pure ones first, then on a live lab.
"""

from __future__ import annotations

import pandas as pd
import pytest

from labkit.course import l06_secure_boot_and_rollback as lesson
from labkit.course.common import package


def test_flip_byte_changes_one_payload_byte_only() -> None:
    from labkit.repo.images import inspect_image

    image = package("2.0.0", 64)
    flipped = lesson.flip_byte(image)
    assert len(flipped) == len(image)
    assert [i for i in range(len(image)) if image[i] != flipped[i]] == [32]
    assert lesson.flip_byte(image, 0)[0] == image[0] ^ 1
    with pytest.raises(ValueError):
        lesson.flip_byte(image, len(image))
    with pytest.raises(ValueError):
        lesson.flip_byte(b"")
    from labkit.repo.images import build_image

    signed = build_image(version="2.0.0", size=1024, key=lesson.lab_key())
    info = inspect_image(signed)
    diff = [i for i in range(len(signed)) if signed[i] != lesson.flip_byte(signed)[i]]
    assert diff == [info.header_size + info.image_size // 2]


def test_verify_table_names_the_reason_of_each_refusal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from labkit.repo.images import build_image, public_key

    key = lesson.lab_key(tmp_path)
    good = build_image(version="2.0.0", size=2048, key=key)
    table = lesson.verify_table(
        {
            "good": good,
            "tampered": lesson.flip_byte(good),
            "wrong key": build_image(version="2.0.0", size=2048, key=key, broken="wrong-key"),
            "noise": build_image(version="2.0.0", size=2048, broken="not-an-image"),
        },
        key=public_key("ed25519", tmp_path),
    )
    rows = table.set_index("image")
    assert rows["ok"].tolist() == [True, False, False, False]
    assert rows["reason"].tolist() == ["ok", "bad hash", "bad signature", "bad magic"]
    assert rows.loc["good", "hash_tlv"] == rows.loc["good", "hash_now"]
    assert rows.loc["tampered", "hash_tlv"] != rows.loc["tampered", "hash_now"]
    assert rows.loc["tampered", "hash_tlv"] == rows.loc["good", "hash_tlv"]
    assert pd.isna(rows.loc["noise", "hash_tlv"]) and rows.loc["good", "version"] == "2.0.0"
