"""PUSH of one image over DTLS-PSK against the same PUSH over plain CoAP, side by side.

Row **push (DTLS-PSK)** -- two labs in one process: ``Lab(security="psk")`` (server on
``coaps://``, the device registers over DTLS-PSK with tinydtls, TLS_PSK_WITH_AES_128_CCM_8) and
``Lab()`` (plain CoAP). In each repetition a fresh device of each lab is written a 1 MiB image
to /5/0/0 (Block1, 1024-byte blocks, one CON per block), timed from ``DeviceHandle.write``
until 2.04; the DTLS handshake happens at Register, before the timing starts, so the ratio is
the record-layer cost (AES-CCM per block, per-peer state) of a transfer. Goal: <= 1.5x.
Pairs are interleaved; loopback only, ephemeral ports.
"""

from __future__ import annotations

from benchmarks.bench_transfer import MIB, image_bytes, timed_push
from benchmarks.harness import (
    Goal,
    Options,
    Row,
    interleaved,
    median,
    not_yet,
    paired_ratio,
    register,
)

GOAL = Goal(op="<=", value=1.5, text="<= 1.5x")


class _Side:
    def __init__(self, security: str, image: bytes, timeout: float) -> None:
        from labkit.runtime import Lab

        self.lab = Lab(security=security, request_timeout=timeout)
        self.lab.start()
        self.image = image
        self.timeout = timeout
        self.security = security
        self._n = 0

    def push(self) -> float:
        self._n += 1
        device = self.lab.add_device(f"bench-{self.security}-{self._n:03d}", lifetime=3600)
        return timed_push(device, self.image, self.timeout, self.security)

    def close(self) -> None:
        self.lab.close()


@register("dtls", "1 MiB PUSH over DTLS-PSK vs plain CoAP")
def bench_dtls(options: Options) -> list[Row]:
    from labkit.dtls import dtls_available

    what = "PUSH 1 MiB over DTLS-PSK (coaps://)"
    if not dtls_available():
        return [not_yet("dtls", what, GOAL, "DTLSSocket (tinydtls) is not installed")]
    size = options.pick(MIB, 256 * 1024)
    image = image_bytes(size)
    timeout = 30.0 + size / MIB * 60.0
    secure = _Side("psk", image, timeout)
    plain = _Side("nosec", image, timeout)
    try:
        labs, refs = interleaved(secure.push, plain.push, options.pick(5, 2))
    finally:
        secure.close()
        plain.close()
    sized = what if size == MIB else what.replace("1 MiB", f"{size // 1024} KiB")
    return [
        Row(
            key="dtls",
            what=sized,
            goal=GOAL,
            lab=median(labs),
            reference=median(refs),
            ref_what="the same PUSH over plain CoAP (lab, no DTLS)",
            ratio=paired_ratio(labs, refs),
            note=f"median of {len(labs)} interleaved pairs; handshake at Register, not timed",
            samples={"lab": labs, "reference": refs},
        )
    ]
