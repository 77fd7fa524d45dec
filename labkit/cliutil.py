"""What the ``labkit`` command and the subcommands that live with their package (``labkit
fota`` in :mod:`labkit.fota.cli`, ``labkit simulate`` in :mod:`labkit.fota.simulate_cli`,
``labkit bootstrap`` in :mod:`labkit.security_cli`, ``labkit sweep``) share: argument types
(``HOST:PORT``, ``coap://HOST:PORT``, positive integers), console output (:func:`say`,
:func:`fail`) and Ctrl-C handling (:class:`StopSignal`).

This module sits below everything that parses a command line and imports nothing of labkit,
so that :mod:`labkit.cli` can import the subcommands and they can import these without an
import circle.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from urllib.parse import urlsplit

__all__ = ["StopSignal", "coap_uri", "fail", "host_port", "positive_int", "say"]


def host_port(text: str) -> tuple[str, int]:
    """``"127.0.0.1:5683"`` / ``"[::1]:5683"`` -> ``("127.0.0.1", 5683)`` (argparse type)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise argparse.ArgumentTypeError(f"bad IPv6 literal in {text!r}")
        host = host[1:-1]
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {text!r}")
    return host, port


def coap_uri(text: str) -> str:
    """A ``coap://HOST:PORT`` server URI (argparse type); the default port is 5683."""
    parts = urlsplit(text)
    if parts.scheme != "coap" or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected coap://HOST:PORT, got {text!r}")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from exc
    return text.rstrip("/")


def positive_int(text: str) -> int:
    """``"5"`` -> ``5``; zero, negatives and non-integers are refused (argparse type)."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def say(text: str) -> None:
    """Print one line to stdout and flush it (followers read it line by line); control
    characters escaped, and through ``labkit serve``'s non-blocking console while it runs
    (:mod:`labkit.console`)."""
    from labkit.console import say as console_say

    console_say(text)


def fail(text: str) -> None:
    print(f"labkit: {text}", file=sys.stderr, flush=True)


class StopSignal:
    """SIGINT/SIGTERM turned into an :class:`asyncio.Event` (install it first thing, so a
    signal that arrives while a device is still registering still shuts it down cleanly)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        for sig in self.SIGNALS:
            self.loop.add_signal_handler(sig, self.event.set)

    async def wait(self) -> None:
        await self.event.wait()

    def close(self) -> None:
        for sig in self.SIGNALS:
            self.loop.remove_signal_handler(sig)
