"""Case 5: a streaming recorder (events written to disk leave memory, parts compacted in the
background), a bounded number of registrations and bounded lifetimes on the server."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import aiocoap
import pyarrow as pa

from labkit.events import Event
from labkit.record.recorder import Recorder
from labkit.record.runs import part_files, read_run
from labkit.server import LwM2MServer
from tests.adversarial.helpers import Peer, encode, register, run


def _feed(rec: Recorder, start: int, n: int) -> None:
    for i in range(start, start + n):
        rec(
            Event(
                ts=float(i),
                source="server",
                kind="registered",
                device=f"ep-{i % 997}",
                detail="x" * 40,
            )
        )
        if i % 2000 == 0:
            rec.flush()


def _allocated() -> int:
    """Bytes held by Python objects (numpy and pandas included) and by Arrow's memory pool
    (converted events are Arrow tables until written; tracemalloc does not see those)."""
    return tracemalloc.get_traced_memory()[0] + pa.total_allocated_bytes()


def test_streaming_recorder_memory_and_parts_stay_bounded(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "run", retain=False, flush_interval=3600)
    try:
        _feed(rec, 0, 20_000)
        rec.flush()
        tracemalloc.start()
        base = _allocated()
        _feed(rec, 20_000, 50_000)
        rec.flush()
        grown = _allocated() - base
        tracemalloc.stop()
        assert grown < 2 << 20, f"{grown / 2**20:.1f} MiB kept for 50,000 events"
        parts = part_files(tmp_path / "run" / "events.parquet")
        assert len(parts) <= 2 * Recorder.MERGE_FANOUT, len(parts)  # 35 flushes happened
        frame = rec.frame()  # read back from disk
        assert len(frame) == 70_000 and frame["seq"].is_monotonic_increasing
    finally:
        rec.close()
    run_ = read_run(tmp_path / "run")
    assert len(run_.events) == 70_000 and run_.complete


def test_retaining_recorder_still_grows_so_the_test_above_can_fail(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "run", flush_interval=3600)
    try:
        _feed(rec, 0, 20_000)
        rec.flush()
        tracemalloc.start()
        base = _allocated()
        _feed(rec, 20_000, 50_000)
        rec.flush()
        grown = _allocated() - base
        tracemalloc.stop()
        assert grown > 2 << 20, grown
    finally:
        rec.close()


def test_registration_count_and_lifetime_are_bounded() -> None:
    async def main() -> None:
        events: list[Event] = []
        server = LwM2MServer(on_event=events.append, max_registrations=50, max_lifetime=3600)
        await server.start()
        peer = Peer(server.port)
        try:
            codes = []
            for i in range(60):
                answer = await peer.request(register(f"ep-{i}"), mid=i)
                codes.append(str(answer.code.dotted))
            assert codes[:50] == ["2.01"] * 50 and set(codes[50:]) == {"5.03"}
            assert len(server.registrations) == 50
            # a known endpoint may still register again (replacement), a new one may not
            again = await peer.request(register("ep-3"), mid=100)
            assert str(again.code.dotted) == "2.01"
            big = await peer.request(register("ep-1", lifetime=2**32 - 1), mid=101)
            assert str(big.code.dotted) == "4.00"
            assert any(e.code == "5.03" for e in events)
            late = aiocoap.Message.decode(await peer.exchange(encode(register("late"), 102)) or b"")
            assert late.opt.max_age == 60
        finally:
            peer.close()
            await server.stop()

    run(main)
