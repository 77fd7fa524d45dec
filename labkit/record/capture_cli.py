"""The ``labkit import-pcap FILE --out RUN`` subcommand: a capture becomes a run directory.

This module only parses arguments and prints; :func:`labkit.record.capture.import_pcap` does
the work. Output (stdout, one item per line)::

    capture      dev.pcapng (pcapng)
    packets      812
    UDP          790
    CoAP         784 messages (3 retransmissions)
    devices      1: sim-1
    events       640 (block 512, fw_state 5, ...)
    skipped      6
           4  not CoAP (DNS, UDP port 53)
           2  CoAP: token length > 8
    run          data/runs/dev-capture

Exit codes: 0 when the capture was read (even with skipped packets, which are listed), 1 when
the file could not be read as a capture at all or the run could not be written (the reason goes
to stderr), 2 for usage errors (argparse).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["IMPORT_PCAP_HELP", "add_import_pcap_parser", "configure_import_pcap", "run_import_pcap"]

IMPORT_PCAP_HELP = "CoAP/LwM2M capture (pcap/pcapng) -> event table"


def configure_import_pcap(p: argparse.ArgumentParser) -> None:
    """Arguments of ``import-pcap`` (the ``configure`` of :func:`labkit.cli.command`)."""
    p.add_argument("file", metavar="FILE", help="capture file (tcpdump -w, Wireshark; pcap/pcapng)")
    p.add_argument(
        "--out",
        metavar="RUN",
        required=True,
        help="run directory to write (manifest.json + events.parquet); must not hold a run",
    )


def add_import_pcap_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add ``import-pcap`` to an ``add_subparsers()`` object; its default ``_run`` is set."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "import-pcap", help=IMPORT_PCAP_HELP, description=IMPORT_PCAP_HELP
    )
    configure_import_pcap(p)
    p.set_defaults(_run=run_import_pcap)
    return p


def run_import_pcap(args: argparse.Namespace) -> int:
    """Import ``args.file`` into the run directory ``args.out``; print a summary."""
    from labkit.record.capture import CaptureError, import_pcap
    from labkit.record.runs import RunError

    try:
        result = import_pcap(args.file, args.out)
    except CaptureError as exc:
        print(f"labkit: import-pcap: {exc}", file=sys.stderr, flush=True)
        return 1
    except (RunError, OSError) as exc:
        print(f"labkit: import-pcap: cannot write the run: {exc}", file=sys.stderr, flush=True)
        return 1
    print(result.summary(), flush=True)
    print(f"run          {args.out}", flush=True)
    return 0
