"""Command-line pieces for security settings, shared by ``labkit serve|fota|device|bootstrap``.

* :func:`listen_address`: ``HOST:PORT``, ``coap://HOST:PORT`` or ``coaps://HOST:PORT`` (an
  argparse type; the result unpacks as ``host, port`` and has ``.scheme``).
* :func:`add_psk_options` / :func:`psk_store_from_args`: ``--psk EP:IDENTITY:HEXKEY``
  (repeatable) and ``--psk-file FILE`` (one such line each, ``#`` comments).
* :func:`add_device_security_options` / :func:`device_security_kwargs`: ``--psk-identity``,
  ``--psk-key HEX``, ``--tls-trust FILE`` for a simulated device.

Keys are never echoed: error messages name the entry or the file line, not its key.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ListenAddress",
    "add_device_security_options",
    "add_psk_options",
    "device_security_kwargs",
    "listen_address",
    "psk_store_from_args",
    "server_uri",
]


class ListenAddress(tuple[str, int]):
    """``(host, port)`` with the scheme it was given with (``coap`` or ``coaps``)."""

    scheme: str

    def __new__(cls, host: str, port: int, scheme: str = "coap") -> ListenAddress:
        self = super().__new__(cls, (host, port))
        self.scheme = scheme
        return self


def listen_address(text: str) -> ListenAddress:
    """argparse type: ``HOST:PORT`` (plain CoAP), ``coap://HOST:PORT`` or ``coaps://HOST:PORT``."""
    from labkit.cliutil import host_port

    scheme = "coap"
    rest = text
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme not in ("coap", "coaps"):
            raise argparse.ArgumentTypeError(f"expected coap:// or coaps://, got {text!r}")
        rest = rest.rstrip("/")
    host, port = host_port(rest)
    return ListenAddress(host, port, scheme)


def server_uri(text: str) -> str:
    """argparse type: a ``coap://`` or ``coaps://`` server URI."""
    parts = urlsplit(text)
    if parts.scheme not in ("coap", "coaps") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected coap[s]://HOST:PORT, got {text!r}")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from exc
    return text.rstrip("/")


def _psk_entry(text: str) -> Any:
    from labkit.dtls import PskEntry

    try:
        return PskEntry.parse(text)
    except ValueError as exc:
        endpoint = text.split(":", 1)[0]
        raise argparse.ArgumentTypeError(f"--psk for {endpoint!r}: {exc}") from None


def add_psk_options(p: argparse.ArgumentParser) -> None:
    """``--psk EP:IDENTITY:HEXKEY`` (repeatable) and ``--psk-file FILE``."""
    p.add_argument(
        "--psk",
        type=_psk_entry,
        action="append",
        default=[],
        metavar="EP:IDENTITY:HEXKEY",
        help="a device's pre-shared key for coaps:// (repeatable)",
    )
    p.add_argument(
        "--psk-file",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="pre-shared keys, one EP:IDENTITY:HEXKEY line each",
    )


def psk_store_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~labkit.dtls.PskStore` of ``--psk``/``--psk-file`` (ValueError if bad)."""
    from labkit.dtls import PskStore

    store = PskStore.parse(files=args.psk_file)
    for entry in args.psk:
        store.add(entry)
    return store


def add_device_security_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--psk-identity", default=None, metavar="ID", help="PSK identity (coaps://)")
    p.add_argument("--psk-key", default=None, metavar="HEX", help="pre-shared key, hex")
    p.add_argument(
        "--tls-trust",
        type=Path,
        default=None,
        metavar="FILE",
        help="certificate trusted for https:// downloads (lists HTTPS in /5/0/8)",
    )


def device_security_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``psk_identity``, ``psk_key``, ``tls_trust`` for :class:`SimulatedDevice` (ValueError)."""
    from labkit.dtls import parse_hex_key

    kwargs: dict[str, Any] = {}
    if (args.psk_identity is None) != (args.psk_key is None):
        raise ValueError("--psk-identity and --psk-key go together")
    if args.psk_identity is not None:
        kwargs["psk_identity"] = args.psk_identity
        kwargs["psk_key"] = parse_hex_key(args.psk_key)
    if args.tls_trust is not None:
        kwargs["tls_trust"] = args.tls_trust
    return kwargs


# -- labkit bootstrap -----------------------------------------------------------------------
def configure_bootstrap(p: argparse.ArgumentParser) -> None:
    """Options of ``labkit bootstrap``."""
    p.add_argument(
        "--listen",
        type=listen_address,
        default=ListenAddress("127.0.0.1", 5783),
        metavar="[coap[s]://]HOST:PORT",
        help="address of the Bootstrap server (default 127.0.0.1:5783; coaps:// = DTLS-PSK "
        "with the --psk keys)",
    )
    p.add_argument(
        "--server-uri",
        type=server_uri,
        required=True,
        metavar="coap[s]://HOST:PORT",
        help="the LwM2M server the devices are sent to",
    )
    add_psk_options(p)
    p.add_argument(
        "--server-psk",
        type=_psk_entry,
        action="append",
        default=[],
        metavar="EP:IDENTITY:HEXKEY",
        help="the key written for EP's management server (default: EP's --psk entry)",
    )
    p.add_argument("--lifetime", type=int, default=300, help="lifetime written to /1 (300 s)")
    p.add_argument("--record", type=Path, default=None, metavar="DIR", help="save the run here")


async def _bootstrap(args: argparse.Namespace) -> int:
    from labkit.cliutil import StopSignal, fail, say
    from labkit.events import discard
    from labkit.server.bootstrap import BootstrapConfig, BootstrapServer

    try:
        store = psk_store_from_args(args)
    except (ValueError, OSError) as exc:
        fail(str(exc))
        return 2
    written = {e.endpoint: e for e in store.values()}
    written.update({e.endpoint: e for e in args.server_psk})
    secure_target = args.server_uri.startswith("coaps:")
    configs = {
        ep: BootstrapConfig(
            args.server_uri,
            e.identity if secure_target else None,
            e.key if secure_target else None,
            lifetime=args.lifetime,
        )
        for ep, e in written.items()
    }
    default = None if secure_target else BootstrapConfig(args.server_uri, lifetime=args.lifetime)
    recorder: Any = None
    if args.record is not None:
        from labkit.record import Recorder

        recorder = Recorder.in_root(args.record, manifest={"command": "labkit bootstrap"})
    host, port = args.listen
    secure = args.listen.scheme == "coaps"
    server = BootstrapServer(
        host=host,
        port=0 if secure else port,
        coap=not secure,
        coaps_port=port if secure else None,
        psk_store=store,
        configs=configs,
        default=default,
        on_event=recorder if recorder is not None else discard,
    )
    stop = StopSignal()
    try:
        try:
            await server.start()
        except OSError as exc:
            fail(f"cannot listen: {exc}")
            return 1
        say(f"bootstrap server listening on {' '.join(server.uris)}")
        await stop.wait()
    finally:
        stop.close()
        await server.stop()
        if recorder is not None:
            recorder.close()
    say("stopped")
    return 0


def run_bootstrap(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_bootstrap(args))
