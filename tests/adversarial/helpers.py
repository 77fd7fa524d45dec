"""Shared helpers of the adversarial suite: raw CoAP datagrams built by hand, a raw UDP peer,
and readings of a process's RSS and open descriptors from /proc."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiocoap
from aiocoap.message import Direction

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await scenario()

    return asyncio.run(main())


def encode(msg: aiocoap.Message, mid: int = 0x1234) -> bytes:
    """aiocoap's encoder for a request we build (CON unless ``msg.mtype`` says otherwise)."""
    msg.direction = Direction.OUTGOING
    if msg.mtype is None:
        msg.mtype = aiocoap.CON
    msg.mid = mid
    if not msg.token:
        msg.token = b"\x01\x02"
    return bytes(msg.encode())


def register(
    endpoint: str, links: str = "</1/0>,</3/0>,</5/0>", lifetime: int = 300
) -> aiocoap.Message:
    return aiocoap.Message(
        code=aiocoap.POST,
        uri_path=("rd",),
        uri_query=(f"ep={endpoint}", f"lt={lifetime}", "lwm2m=1.1", "b=U"),
        content_format=40,
        payload=links.encode(),
    )


def option(delta: int, value: bytes) -> bytes:
    """One option in raw form (delta < 269, value length < 13)."""
    assert len(value) < 13
    if delta < 13:
        return bytes([(delta << 4) | len(value)]) + value
    return bytes([(13 << 4) | len(value), delta - 13]) + value


def raw(
    mtype: int,
    code: int,
    mid: int,
    token: bytes,
    opts: bytes = b"",
    payload: bytes | None = None,
    tkl: int | None = None,
) -> bytes:
    tl = len(token) if tkl is None else tkl
    head = bytes([0x40 | (mtype << 4) | tl, code]) + struct.pack("!H", mid) + token
    return head + opts + (b"" if payload is None else b"\xff" + payload)


class Peer:
    """A raw UDP socket on 127.0.0.1 talking to one port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    async def recv(self, timeout: float = 2.0) -> bytes | None:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.sock_recv(self.sock, 70000), timeout)
        except TimeoutError:
            return None

    async def exchange(self, data: bytes, timeout: float = 2.0) -> bytes | None:
        self.drain()
        self.send(data)
        return await self.recv(timeout)

    async def request(
        self, msg: aiocoap.Message, mid: int = 0x1234, timeout: float = 5.0
    ) -> aiocoap.Message:
        answer = await self.exchange(encode(msg, mid), timeout)
        assert answer is not None, "no answer"
        return aiocoap.Message.decode(answer)

    def drain(self) -> None:
        while True:
            try:
                self.sock.recv(70000)
            except BlockingIOError:
                return


def code_of(datagram: bytes) -> str:
    return f"{datagram[1] >> 5}.{datagram[1] & 31:02d}"


def mtype_of(datagram: bytes) -> int:
    return (datagram[0] >> 4) & 3


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def open_fds(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def labkit_argv(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "labkit", *args]


def labkit_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


async def wait_registering(port: int, timeout: float = 30.0) -> None:
    """Until a Register to 127.0.0.1:port is answered 2.01."""
    peer = Peer(port)
    try:
        async with asyncio.timeout(timeout):
            mid = 0
            while True:
                mid += 1
                answer = await peer.exchange(encode(register(f"probe-{mid}"), mid), 0.5)
                if answer is not None and answer[1] == 0x41:
                    return
    finally:
        peer.close()
