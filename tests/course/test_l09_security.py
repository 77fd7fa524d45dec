"""labkit.course.l09_security: the handshake table and the bootstrap sequence of a real run."""

from __future__ import annotations

import matplotlib
import pytest

from labkit.course import l09_security as course_security
from labkit.dtls import dtls_available
from labkit.runtime import Lab

matplotlib.use("Agg")
pytestmark = pytest.mark.skipif(not dtls_available(), reason="DTLSSocket is not installed")


def test_bootstrap_sequence_and_handshakes_from_a_bootstrap_lab() -> None:
    with Lab(security="psk", bootstrap=True) as lab:
        lab.add_device("cs-1", timeout=15)
        events = lab.events()
    seq = course_security.bootstrap_sequence(events, "cs-1")
    assert list(seq.kind) == ["security", *["bootstrap"] * 8, "security", "registered"]
    assert list(seq.method[1:8]) == [
        "Bootstrap-Request", "Bootstrap-Discover", "Bootstrap-Delete", "Bootstrap-Delete",
        "Bootstrap-Write", "Bootstrap-Write", "Bootstrap-Finish",
    ]  # fmt: skip
    assert seq.t_ms.is_monotonic_increasing and seq.t_ms.iloc[0] == 0
    table = course_security.handshake_table(events)
    assert set(table.outcome) == {"ok"} and set(table.source) == {"bootstrap", "device", "server"}
    ax = course_security.plot_bootstrap(events, "cs-1")
    assert len(ax.texts) >= 10
