"""``labkit fota``: serve, wait for one device, update it, print ``RESULT <code> <NAME>``.

The one-shot "update this device" command (DESIGN.md section 5)::

    labkit fota --listen [coap[s]://]HOST:PORT --endpoint EP --package FILE --method push|pull
                [--protocol coap|http|coaps|https] [--block-size N] [--timeout S]
                [--cancel-after S] [--record DIR] [--psk EP:IDENTITY:HEXKEY] [--psk-file F]

With ``--listen coaps://...`` the server speaks DTLS-PSK only (the keys of ``--psk``); a PULL
over ``coaps`` or ``https`` makes the repository serve that protocol too (same keys; the lab
certificate of :mod:`labkit.tls` for HTTPS).

It starts the lab's LwM2M server on ``--listen`` (and, for PULL, a firmware repository on the
same host with ephemeral ports), waits for ``EP`` to register, runs
:func:`labkit.fota.update`, waits for the post-update re-registration, saves the run when
``--record`` is given, and prints one line per stage and, last, ``RESULT <code> <NAME>``
(``RESULT - STUCK``, ``- TIMEOUT`` or ``- REFUSED`` when the device reported no final result).

Exit codes: 0 SUCCESS; 1 any other final result (or a refusal); 3 timeout (the device never
registered, got stuck, or never came back); 2 usage errors (argparse, an unreadable or empty
package, PUSH over http).

This module parses arguments and prints; :mod:`labkit.fota.update` does the work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

from labkit.fota.outcome import EXIT_FAILURE, EXIT_USAGE
from labkit.fota.plan import BLOCK_SIZES

__all__ = ["add_fota_parser", "configure_fota", "run_fota"]

HELP = "update one device (push or pull), print RESULT <code> <NAME>"


def _host_port(text: str) -> tuple[str, int]:
    from labkit.cliutil import host_port

    return host_port(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from exc
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def configure_fota(p: argparse.ArgumentParser) -> None:
    """Add the options of ``labkit fota`` to ``p``."""
    from labkit.security_cli import ListenAddress, add_psk_options, listen_address

    p.add_argument(
        "--listen",
        type=listen_address,
        default=ListenAddress("127.0.0.1", 5683),
        metavar="[coap[s]://]HOST:PORT",
        help="address of the LwM2M server (default 127.0.0.1:5683; port 0 = ephemeral; "
        "coaps:// = DTLS-PSK with the --psk keys)",
    )
    add_psk_options(p)
    p.add_argument("--endpoint", required=True, metavar="EP", help="endpoint name to update")
    p.add_argument("--package", type=Path, required=True, metavar="FILE", help="the image")
    p.add_argument("--method", required=True, choices=("push", "pull"), help="delivery method")
    p.add_argument(
        "--protocol",
        default="coap",
        choices=("coap", "http", "coaps", "https"),
        help="PULL protocol (coap)",
    )
    p.add_argument(
        "--block-size",
        type=int,
        default=1024,
        choices=BLOCK_SIZES,
        metavar="N",
        help="Block1 size of a PUSH: 16..1024 (default 1024)",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="no-progress timeout in seconds (default 60); also how long to wait for the "
        "device to register unless --register-timeout is given",
    )
    p.add_argument(
        "--register-timeout",
        type=_positive_float,
        default=None,
        metavar="S",
        help="how long to wait for EP to register (default: --timeout)",
    )
    p.add_argument(
        "--reboot-timeout",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="no-progress bound while the device installs and reboots (default 30)",
    )
    p.add_argument(
        "--cancel-after",
        type=_non_negative_float,
        default=None,
        metavar="S",
        help="Cancel (/5/0/10) this many seconds into the download",
    )
    p.add_argument("--record", type=Path, default=None, metavar="DIR", help="save the run here")
    p.add_argument("--run-id", default=None, help="name of the saved run (default: timestamp)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the RESULT line")


def add_fota_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``fota`` to an ``argparse`` subparsers object; its ``_run`` default is
    :func:`run_fota`."""
    p: argparse.ArgumentParser = subparsers.add_parser("fota", help=HELP, description=HELP)
    configure_fota(p)
    p.set_defaults(_run=run_fota)
    return p


def _say(text: str) -> None:
    print(text, flush=True)


def _fail(text: str) -> None:
    print(f"labkit fota: {text}", file=sys.stderr, flush=True)


class _Progress:
    """Prints download progress every 10 %."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.next = 10

    def __call__(self, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        pct = done * 100 // total
        if pct >= self.next:
            _say(f"download: {pct}% ({done}/{total} B)")
            self.next = (pct // 10 + 1) * 10


def run_fota(args: argparse.Namespace) -> int:
    """Body of ``labkit fota``; returns the exit code."""
    try:
        package = args.package.read_bytes()
    except OSError as exc:
        _fail(f"--package {args.package}: {exc.strerror or exc}")
        return EXIT_USAGE
    if not package:
        _fail(f"--package {args.package} is empty (an empty package is the /5 reset)")
        return EXIT_USAGE
    if args.method == "push" and args.protocol != "coap":
        _fail(f"--protocol {args.protocol} only applies to --method pull (PUSH goes over CoAP)")
        return EXIT_USAGE
    try:
        from labkit.security_cli import psk_store_from_args

        args.psk_store = psk_store_from_args(args)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
        return EXIT_USAGE
    try:
        return asyncio.run(_fota(args, package))
    except KeyboardInterrupt:
        return 130


async def _fota(args: argparse.Namespace, package: bytes) -> int:
    from labkit.events import discard
    from labkit.fota.update import update
    from labkit.server import LwM2MServer

    recorder: Any = None
    if args.record is not None:
        from labkit.record import Recorder

        recorder = Recorder.in_root(
            args.record,
            run_id=args.run_id,
            manifest={
                "command": "labkit fota",
                "listen": list(args.listen),
                "endpoint": args.endpoint,
                "package": str(args.package),
                "package_size": len(package),
                "method": args.method,
                "protocol": args.protocol,
                "block_size": args.block_size,
                "timeout": args.timeout,
                "cancel_after": args.cancel_after,
            },
        )
    sink = recorder if recorder is not None else discard
    host, port = args.listen
    secure = getattr(args.listen, "scheme", "coap") == "coaps"
    server = LwM2MServer(
        host=host,
        port=0 if secure else port,
        on_event=sink,
        request_timeout=args.timeout,
        psk_store=args.psk_store,
        coaps_port=port if secure else None,
        coap=not secure,
    )
    started = False
    repository: Any = None
    quiet = bool(args.quiet)
    try:
        try:
            await asyncio.wait_for(server.start(), 10)
            started = True
            if args.method == "pull":
                from labkit.repo.repository import FirmwareRepository

                repo_host = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
                repository = FirmwareRepository(
                    host=repo_host,
                    on_event=sink,
                    psk_store=args.psk_store,
                    coaps_port=0 if args.protocol == "coaps" else None,
                    https_port=0 if args.protocol == "https" else None,
                )
                await asyncio.wait_for(repository.start(), 15)
        except OSError as exc:
            _fail(f"cannot listen on {host}:{port}: {exc}")
            _say("RESULT - ERROR")
            return EXIT_FAILURE
        if not quiet:
            _say(f"listening on {' '.join(server.uris)}")
            if repository is not None:
                _say(
                    f"repository coap port {repository.coap_port}, http port {repository.http_port}"
                )
            if recorder is not None:
                _say(f"recording to {recorder.path}")

        def on_stage(stage: str, detail: str) -> None:
            if not quiet and stage != "done":
                _say(f"{stage}: {detail}")

        outcome = await update(
            server,
            args.endpoint,
            package,
            method=args.method,
            protocol=args.protocol,
            block_size=args.block_size,
            repository=repository,
            timeout=args.timeout,
            register_timeout=args.register_timeout,
            reboot_timeout=args.reboot_timeout,
            cancel_after=args.cancel_after,
            on_stage=on_stage,
            on_progress=_Progress(quiet),
        )
        if recorder is not None:
            recorder.manifest["outcome"] = outcome.as_row()
        if not quiet:
            _say(f"outcome: {outcome.summary}")
            if outcome.result_source is not None:
                _say(
                    f"verdict: state from {outcome.state_source}, result from "
                    f"{outcome.result_source}"
                    + (" (read just before the verdict)" if outcome.confirmed else "")
                )
            _say(
                "durations: "
                + ", ".join(
                    f"{name} {value:.2f} s"
                    for name, value in (
                        ("check", outcome.check_s),
                        ("download", outcome.download_s),
                        ("update", outcome.update_s),
                        ("reboot", outcome.reboot_s),
                    )
                    if value is not None
                )
                + f"; {outcome.bytes_sent} B in {outcome.blocks} blocks"
            )
    finally:
        if repository is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(repository.stop(), 10)
        if started:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.stop(), 10)
        if recorder is not None:
            recorder.close()
            if not quiet:
                _say(f"saved run {recorder.run_id} to {recorder.path}")
    _say(outcome.result_line)
    return outcome.exit_code
