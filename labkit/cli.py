"""The ``labkit`` command (DESIGN.md section 5 is the contract for names and exit codes).

Each subcommand is one ``configure(parser)`` function plus one ``run(args) -> int`` function,
registered in :data:`COMMANDS` with the :func:`command` decorator::

    def _configure_report(p: argparse.ArgumentParser) -> None:
        p.add_argument("run")

    @command("report", help="PNG plots + summary table of a run", configure=_configure_report)
    def cmd_report(args: argparse.Namespace) -> int:
        ...
        return 0

Exit codes: 0 success, 1 failure, 2 usage error (argparse), 3 timeout. Long-running commands
(``serve``, ``device``, ``fleet``) run until SIGINT or SIGTERM, then shut down cleanly (devices
de-register) and exit 0. Their stdout is line-oriented and flushed per line so that scripts and
tests can follow it::

    listening on coap://127.0.0.1:5683
    registered sim-1 from 127.0.0.1:40123 lt=300 lwm2m=1.1 b=U
    updated sim-1 from 127.0.0.1:40123 lt=300
    deregistered sim-1
    expired sim-2

This module parses arguments and prints; the work is done by :mod:`labkit.server`,
:mod:`labkit.client`, :mod:`labkit.record` and :mod:`labkit.runtime`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.cliutil import (  # noqa: F401 (re-exported for the subcommands of old)
    StopSignal,
    coap_uri,
    fail,
    host_port,
    positive_int,
    say,
)

__all__ = ["COMMANDS", "Command", "build_parser", "command", "main"]

#: Default CoAP listen address of ``serve`` (DESIGN.md section 6: 5683, loopback).
DEFAULT_SERVE_LISTEN = "127.0.0.1:5683"


@dataclass(frozen=True)
class Command:
    """One ``labkit`` subcommand: its name, one-line help, argument set-up and body."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


#: Subcommands by name, in the order they appear in ``labkit --help``.
COMMANDS: dict[str, Command] = {}


def command(
    name: str, *, help: str, configure: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register a subcommand in :data:`COMMANDS` (a decorator for its ``run`` function)."""

    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        if name in COMMANDS:
            raise ValueError(f"labkit subcommand {name!r} is registered twice")
        COMMANDS[name] = Command(name=name, help=help, configure=configure, run=run)
        return run

    return register


def _format_address(address: Any) -> str:
    from labkit.runtime import format_address

    return format_address(address)


# -- labkit lab ---------------------------------------------------------------------------
def _default_notebooks() -> Path:
    here = Path("notebooks")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "notebooks"


def _configure_lab(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address JupyterLab listens on")
    p.add_argument("--port", type=int, default=8888, help="HTTP port (default 8888)")
    p.add_argument("--notebooks", type=Path, default=None, help="folder to open (notebooks/)")
    p.add_argument(
        "jupyter_args",
        nargs=argparse.REMAINDER,
        help="extra JupyterLab options after `--` (e.g. -- --IdentityProvider.token=SECRET)",
    )


def jupyterlab_argv(args: argparse.Namespace, notebooks: Path) -> list[str]:
    """The command line ``labkit lab`` runs (JupyterLab through this interpreter)."""
    extra = list(args.jupyter_args or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        # Containers and CI often run as root; JupyterLab refuses that unless told.
        extra.append("--allow-root")
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.ip={args.host}",
        f"--ServerApp.port={args.port}",
        "--ServerApp.port_retries=0",  # the printed URL must be the real one
        f"--ServerApp.root_dir={notebooks}",
        "--no-browser",
        *extra,
    ]


@command(
    "lab", help="open JupyterLab on notebooks/ (what `make lab` runs)", configure=_configure_lab
)
def cmd_lab(args: argparse.Namespace) -> int:
    notebooks = (args.notebooks or _default_notebooks()).resolve()
    if not notebooks.is_dir():
        fail(f"no notebooks folder at {notebooks} (use --notebooks DIR)")
        return 2
    argv = jupyterlab_argv(args, notebooks)
    host = f"[{args.host}]" if ":" in args.host else args.host
    say(f"JupyterLab on http://{host}:{args.port}/lab (notebooks: {notebooks})")
    say("JupyterLab prints the URL with its login token below; Ctrl-C twice stops it.")
    sys.stderr.flush()
    os.execv(argv[0], argv)
    return 0  # pragma: no cover - execv does not return


# -- labkit serve -------------------------------------------------------------------------
def _configure_serve(p: argparse.ArgumentParser) -> None:
    from labkit.security_cli import add_psk_options, listen_address

    p.add_argument(
        "--listen",
        type=listen_address,
        default=listen_address(DEFAULT_SERVE_LISTEN),
        metavar="[coap[s]://]HOST:PORT",
        help=f"address of the LwM2M server (default {DEFAULT_SERVE_LISTEN}); coaps:// = DTLS-PSK",
    )
    p.add_argument(
        "--listen-coaps",
        type=host_port,
        default=None,
        metavar="HOST:PORT",
        help="also listen for coaps:// (DTLS-PSK) here, beside --listen coap://",
    )
    add_psk_options(p)
    p.add_argument(
        "--repo-coaps", type=host_port, default=None, metavar="HOST:PORT",
        help="also serve the repository over coaps:// (the --psk keys) here",
    )  # fmt: skip
    p.add_argument(
        "--repo-https", type=host_port, default=None, metavar="HOST:PORT",
        help="also serve the repository over https:// (lab certificate in data/keys) here",
    )  # fmt: skip
    p.add_argument(
        "--repo-coap",
        type=host_port,
        default=None,
        metavar="HOST:PORT",
        help="also run the firmware repository's CoAP (Block2) server here",
    )
    p.add_argument(
        "--repo-http",
        type=host_port,
        default=None,
        metavar="HOST:PORT",
        help="also run the firmware repository's HTTP (Range) server here",
    )
    p.add_argument(
        "--image",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="serve this file from the repository as /fw/<file name> (repeatable)",
    )
    p.add_argument("--record", type=Path, default=None, metavar="DIR", help="save the run here")
    p.add_argument("--run-id", default=None, help="name of the saved run (default: timestamp)")
    p.add_argument("--request-timeout", type=float, default=10.0, help="bound of one request (s)")
    p.add_argument(
        "--max-registrations",
        type=positive_int,
        default=20_000,
        help="registrations held at most; a new endpoint beyond is answered 5.03 (20000)",
    )
    p.add_argument(
        "--max-lifetime",
        type=positive_int,
        default=31 * 86_400,
        help="longest lt= accepted in seconds, 4.00 above it (default 31 days)",
    )


def _repository_for(args: argparse.Namespace, on_event: Any) -> Any:
    """The :class:`~labkit.repo.repository.FirmwareRepository` ``serve`` was asked for, or None.

    Raises :class:`ValueError` for option combinations it cannot honour.
    """
    secure = getattr(args, "repo_coaps", None), getattr(args, "repo_https", None)
    if (
        args.repo_coap is None
        and args.repo_http is None
        and not args.image
        and secure
        == (
            None,
            None,
        )
    ):
        return None
    hosts = {hp[0] for hp in (args.repo_coap, args.repo_http) if hp is not None}
    if len(hosts) > 1:
        raise ValueError("--repo-coap and --repo-http must use the same host")
    for image in args.image:
        if not image.is_file():
            raise ValueError(f"--image {image}: no such file")
    from labkit.repo.repository import FirmwareRepository

    host = hosts.pop() if hosts else args.listen[0]
    return FirmwareRepository(
        host=host,
        coap_port=args.repo_coap[1] if args.repo_coap else 0,
        http_port=args.repo_http[1] if args.repo_http else 0,
        on_event=on_event,
        psk_store=getattr(args, "psk_store", None),
        coaps_port=secure[0][1] if secure[0] else None,
        https_port=secure[1][1] if secure[1] else None,
    )


def registration_line(kind: str, reg: Any) -> str:
    """One stdout line of ``labkit serve`` for a registration change."""
    endpoint = reg.endpoint
    address = _format_address(getattr(reg, "address", None))
    if kind == "registered":
        return (
            f"registered {endpoint} from {address} lt={reg.lifetime} "
            f"lwm2m={reg.lwm2m_version} b={reg.binding}"
        )
    if kind == "updated":
        return f"updated {endpoint} from {address} lt={reg.lifetime}"
    return f"{kind} {endpoint}"


async def _serve(args: argparse.Namespace) -> int:
    from labkit.events import discard
    from labkit.server import LwM2MServer

    recorder: Any = None
    if args.record is not None:
        from labkit.record import Recorder

        recorder = Recorder.in_root(
            args.record,
            run_id=args.run_id,
            manifest={"command": "labkit serve", "listen": list(args.listen)},
            retain=False,  # a server runs for days: events written to disk leave memory
        )
    sink = recorder if recorder is not None else discard
    try:
        from labkit.security_cli import psk_store_from_args

        args.psk_store = psk_store_from_args(args)
        repository = _repository_for(args, sink)
    except (ValueError, OSError) as exc:
        fail(str(exc))
        if recorder is not None:
            recorder.close()
        return 2
    host, port = args.listen
    secure = getattr(args.listen, "scheme", "coap") == "coaps"
    coaps_port = port if secure else (args.listen_coaps[1] if args.listen_coaps else None)
    server = LwM2MServer(
        host=host,
        port=0 if secure else port,
        on_event=sink,
        request_timeout=args.request_timeout,
        psk_store=args.psk_store,
        coaps_port=coaps_port,
        coap=not secure,
        max_registrations=args.max_registrations,
        max_lifetime=args.max_lifetime,
    )
    server.add_listener(lambda kind, reg: say(registration_line(kind, reg)))
    stop = StopSignal()
    started: list[Any] = []
    try:
        try:
            await asyncio.wait_for(server.start(), 10)
            started.append(server)
            if repository is not None:
                await asyncio.wait_for(repository.start(), 15)
                started.append(repository)
        except OSError as exc:
            fail(f"cannot listen: {exc}")
            return 1
        say(f"listening on {' '.join(server.uris)}")
        if repository is not None:
            say(
                f"repository coap://{_hp(repository.host, repository.coap_port)} "
                f"http://{_hp(repository.host, repository.http_port)}"
                + "".join(
                    f" {scheme}://{_hp(repository.host, p)}"
                    for scheme, p in (
                        ("coaps", repository.coaps_port),
                        ("https", repository.https_port),
                    )
                    if p is not None
                )
            )
            for image in args.image:
                try:
                    name = repository.add_file(image).rsplit("/", 1)[-1]
                except ValueError as exc:  # a file name the repository cannot serve
                    fail(f"--image {image}: {exc}")
                    return 2
                secure_uris = [
                    uri(name)
                    for port, uri in (
                        (repository.coaps_port, repository.coaps_uri),
                        (repository.https_port, repository.https_uri),
                    )
                    if port is not None
                ]
                say(
                    " ".join(
                        [
                            f"image {name}",
                            repository.coap_uri(name),
                            repository.http_uri(name),
                            *secure_uris,
                        ]
                    )
                )
        if recorder is not None:
            say(f"recording to {args.record / recorder_run_id(recorder, args)}")
        await stop.wait()
    finally:
        stop.close()
        for part in reversed(started):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(part.stop(), 10)
        if recorder is not None:
            recorder.close()
    say("stopped")
    return 0


def _hp(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def recorder_run_id(recorder: Any, args: argparse.Namespace) -> str:
    return str(getattr(recorder, "run_id", None) or args.run_id or "")


@command("serve", help="run the LwM2M server until Ctrl-C", configure=_configure_serve)
def cmd_serve(args: argparse.Namespace) -> int:
    from labkit.console import Console, log_to_stderr

    log_to_stderr()  # WARNINGs escaped: a Uri-Path cannot forge lines on stderr
    with Console(sys.stdout):  # a reader that stops reading never blocks the server
        return asyncio.run(_serve(args))


# -- labkit device ------------------------------------------------------------------------
def _add_device_options(p: argparse.ArgumentParser, server_group: Any = None) -> None:
    from labkit.security_cli import server_uri

    (server_group or p).add_argument(
        "--server",
        type=server_uri,
        required=server_group is None,
        metavar="coap[s]://HOST:PORT",
        help="LwM2M server",
    )
    p.add_argument("--firmware-version", default="1.0.0", help="initial /3/0/3 (default 1.0.0)")
    p.add_argument("--lifetime", type=positive_int, default=300, help="lt= in seconds (300)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--lwm2m", default="1.1", choices=("1.0", "1.1", "1.2"), help="lwm2m= version")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="how long to try to register (s, default 30)"
    )
    _add_hardware_options(p)


def _add_hardware_options(p: argparse.ArgumentParser) -> None:
    """The device model and its faults (labkit/client/model.py, labkit/sim/faults.py)."""
    from labkit.sim.faults import FAULTS

    p.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=FAULTS,
        metavar="NAME",
        help=f"make the device fail on purpose (repeatable): {', '.join(FAULTS)}",
    )
    p.add_argument(
        "--flash-size", type=positive_int, metavar="BYTES", help="flash slot size (4 MiB)"
    )
    p.add_argument("--ram", type=positive_int, metavar="BYTES", help="download RAM buffer (16 KiB)")
    p.add_argument(
        "--hostile-notifications",
        type=int,
        default=None,
        metavar="SEED",
        help="notify /5/0/3 and /5/0/5 reordered, coalesced, late, dropped or repeated, "
        "from SEED (labkit/client/hostile.py); what the device does is unchanged",
    )
    p.add_argument(
        "--battery", type=_percent, metavar="PERCENT", help="initial battery level /3/0/9"
    )
    p.add_argument(
        "--storage",
        type=Path,
        nargs="?",
        const=Path("data/devices"),
        metavar="DIR",
        help="keep the device's flash (slots, state.json) in DIR/<endpoint> across runs "
        "(DIR defaults to data/devices); without it the flash is a temporary folder",
    )


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {text!r}") from exc
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"a battery level is 0..100, got {text!r}")
    return value


def _configure_device(p: argparse.ArgumentParser) -> None:
    server_group = p.add_mutually_exclusive_group(required=True)
    _add_device_options(p, server_group)
    p.add_argument("--endpoint", required=True, metavar="EP", help="endpoint client name")
    p.add_argument(
        "--listen",
        type=host_port,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="the device's own CoAP address (default 127.0.0.1, ephemeral port)",
    )
    from labkit.security_cli import add_device_security_options, server_uri

    add_device_security_options(p)
    server_group.add_argument(
        "--bootstrap",
        type=server_uri,
        default=None,
        metavar="coap[s]://HOST:PORT",
        help="start from this LwM2M Bootstrap server instead of --server",
    )


#: Device events worth a line on the device's stdout (besides its own registration lines).
_DEVICE_EVENT_KINDS = frozenset({"fw_state", "fw_result", "fw_version", "reboot", "fault"})


def device_event_line(event: Any) -> str | None:
    """A stdout line for a device-side event, or ``None`` for events not shown."""
    if event.kind not in _DEVICE_EVENT_KINDS:
        return None
    if event.kind == "fw_state":
        return f"fw_state {event.device} state={event.state}"
    if event.kind == "fw_result":
        return f"fw_result {event.device} result={event.result}"
    if event.kind == "fw_version":
        return f"fw_version {event.device} {event.fw_version}"
    return f"{event.kind} {event.device} {event.detail or ''}".rstrip()


def _device_kwargs(args: argparse.Namespace, endpoint: str | None = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "firmware_version": args.firmware_version,
        "lifetime": args.lifetime,
        "lwm2m_version": args.lwm2m,
        "faults": tuple(args.fault),
    }
    if args.flash_size is not None:
        kwargs["flash_size"] = args.flash_size
    if args.ram is not None:
        kwargs["ram"] = args.ram
    if getattr(args, "hostile_notifications", None) is not None:
        kwargs["hostile_notifications"] = args.hostile_notifications
    if args.battery is not None:
        kwargs["battery"] = args.battery
    if args.storage is not None and endpoint is not None:
        kwargs["storage_dir"] = args.storage / endpoint
    return kwargs


async def _device(args: argparse.Namespace) -> int:
    from labkit.client import SimulatedDevice

    registered_once = False

    def on_event(event: Any) -> None:
        line = device_event_line(event)
        if line is None and registered_once and event.kind == "registered":
            line = f"registered {event.device} to {args.server} (again)"
        if line is not None:
            say(line)

    from labkit.security_cli import device_security_kwargs

    host, port = args.listen
    try:
        security = device_security_kwargs(args)
        if args.bootstrap is not None:
            security["bootstrap_uri"] = args.bootstrap
        device = SimulatedDevice(
            args.endpoint,
            args.server,
            host=host,
            port=port,
            seed=args.seed,
            on_event=on_event,
            **_device_kwargs(args, args.endpoint),
            **security,
        )
    except ValueError as exc:
        fail(str(exc))
        return 2
    stop = StopSignal()
    try:
        await device.start(timeout=args.timeout)
    except (TimeoutError, OSError) as exc:
        stop.close()
        fail(f"{args.endpoint} could not register to {args.server or args.bootstrap}: {exc!r}")
        await device.stop(deregister=False, timeout=2)
        return 3 if isinstance(exc, TimeoutError) else 1
    registered_once = True
    say(
        f"registered {args.endpoint} to {device.server_uri} from {host}:{device.port} "
        f"lt={args.lifetime} fw={args.firmware_version}"
    )
    try:
        await stop.wait()
    finally:
        stop.close()
        await asyncio.wait_for(device.stop(deregister=True, timeout=5), 10)
    say(f"deregistered {args.endpoint}")
    return 0


@command("device", help="run one simulated LwM2M device until Ctrl-C", configure=_configure_device)
def cmd_device(args: argparse.Namespace) -> int:
    return asyncio.run(_device(args))


# -- labkit fleet -------------------------------------------------------------------------
def _configure_fleet(p: argparse.ArgumentParser) -> None:
    _add_device_options(p)
    p.add_argument("--count", type=positive_int, required=True, metavar="N", help="devices")
    p.add_argument("--prefix", default="sim-", help="endpoint prefix (sim- -> sim-0001...)")
    p.add_argument("--host", default="127.0.0.1", help="address the devices bind to")
    p.add_argument("--concurrency", type=positive_int, default=32, help="parallel registrations")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per device")


async def _fleet(args: argparse.Namespace) -> int:
    from labkit.client import SimulatedDevice
    from labkit.runtime import derive_seed, start_devices

    width = max(4, len(str(args.count)))
    names = [f"{args.prefix}{i:0{width}d}" for i in range(1, args.count + 1)]
    devices = [
        SimulatedDevice(
            name,
            args.server,
            host=args.host,
            seed=derive_seed(args.seed, name),
            **_device_kwargs(args, name),
        )
        for name in names
    ]
    stop = StopSignal()
    outcomes = await start_devices(devices, timeout=args.timeout, concurrency=args.concurrency)
    running = [d for d, exc in zip(devices, outcomes, strict=True) if exc is None]
    for device, exc in zip(devices, outcomes, strict=True):
        if exc is not None:
            fail(f"{device.endpoint} did not register: {exc!r}")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(device.stop(deregister=False, timeout=2), 5)
        elif args.verbose:
            say(f"registered {device.endpoint} from {args.host}:{device.port}")
    say(f"registered {len(running)}/{len(devices)} devices to {args.server}")
    if running:
        try:
            await stop.wait()
        finally:
            stop.close()
            await asyncio.gather(
                *(asyncio.wait_for(d.stop(deregister=True, timeout=5), 10) for d in running),
                return_exceptions=True,
            )
        say(f"deregistered {len(running)} devices")
    else:
        stop.close()
    return 0 if len(running) == len(devices) else 1


@command("fleet", help="run N simulated devices until Ctrl-C", configure=_configure_fleet)
def cmd_fleet(args: argparse.Namespace) -> int:
    return asyncio.run(_fleet(args))


# -- subcommands that live with their package (imported only when used) ---------------
def delegate(name: str, *, help: str, module: str, configure: str, run: str) -> None:
    """Register subcommand ``name`` whose argument set-up and body are the functions
    ``configure`` and ``run`` of ``module``, imported only when that command is used (so
    ``labkit image`` never loads pandas, and a command starts fast)."""

    def configure_it(p: argparse.ArgumentParser) -> None:
        getattr(importlib.import_module(module), configure)(p)

    def run_it(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(module), run)(args))

    command(name, help=help, configure=configure_it)(run_it)


delegate(
    "fota",
    help="update one device (push or pull), print RESULT",
    module="labkit.fota.cli",
    configure="configure_fota",
    run="run_fota",
)
delegate(
    "bootstrap",
    help="run an LwM2M Bootstrap server until Ctrl-C",
    module="labkit.security_cli",
    configure="configure_bootstrap",
    run="run_bootstrap",
)
delegate(
    "import-pcap",
    help="decode a CoAP/LwM2M capture (pcap, pcapng) into a run",
    module="labkit.record.capture_cli",
    configure="configure_import_pcap",
    run="run_import_pcap",
)
delegate(
    "report",
    help="PNG plots + summary table of a run",
    module="labkit.report",
    configure="configure_parser",
    run="run_report",
)
delegate(
    "simulate",
    help="run a simulated fleet campaign (link model, policy, faults) and save the run",
    module="labkit.fota.simulate_cli",
    configure="configure_simulate",
    run="run_simulate",
)
delegate(
    "sweep",
    help="run a grid of simulated campaigns x seeds on Dask (or serially) into a Parquet dataset",
    module="labkit.sweep.cli",
    configure="configure_sweep",
    run="run_sweep_cli",
)
delegate(
    "image",
    help="build, verify or inspect MCUboot firmware images",
    module="labkit.repo.cli",
    configure="configure_image",
    run="run_image",
)


# -- entry point --------------------------------------------------------------------------
def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``labkit`` argument parser with every registered subcommand (``only``: configure
    just that one; the others' options, and their imports, are left out)."""
    parser = argparse.ArgumentParser(
        prog="labkit", description="An interactive FOTA lab for LwM2M."
    )
    parser.add_argument("--version", action="version", version=f"labkit {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS.values():
        sub = subparsers.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if only is None or cmd.name == only:
            cmd.configure(sub)
        sub.set_defaults(_run=cmd.run)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("labkit")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``labkit`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    # a command starts fast: only its own options are configured (``labkit simulate`` creates
    # its run directory before pandas is loaded; a kill after a second leaves a loadable run)
    from labkit import runstart

    runstart.early_run(words)  # `labkit simulate`: its run directory exists from here on
    parser = build_parser(only=words[0] if words and words[0] in COMMANDS else None)
    try:
        args = parser.parse_args(words)
    except SystemExit:
        runstart.discard_early()
        raise
    try:
        return int(args._run(args))  # noqa: SLF001 - argparse dest of build_parser
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
