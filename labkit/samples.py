"""The sample data in ``data/samples``: small recorded runs and one packet capture.

The analysis notebook (``notebooks/08_analysing_runs``) and ``labkit report`` work on these
without live devices. One seeded command regenerates all of them::

    python -m labkit.samples --out data/samples --seed 7

========================= =====================================================================
``push-single/``          one simulated device, one PUSH (CoAP Block1, 512-byte blocks) of a
                          signed MCUboot image of 8 KiB; a recorded lab run
``pull-single/``          one simulated device, one PULL of the same image over HTTP (Range
                          requests) from the lab repository; a recorded lab run
``campaign-always/``      a simulated 50-device campaign (mixed link profiles, faults
                          ``link-drop:0.06,boot-fail:0.04,no-flash:0.02``, time scale 100) with
                          policy ``always``: :func:`labkit.fota.simulate.simulate`
``campaign-threshold/``   the same fleet, faults and seed with policy ``threshold``
``push-update.pcap``      tcpdump's capture (``-i lo``) of the ``push-single`` update: the same
                          update seen on the wire (needs tcpdump and root; else left out)
========================= =====================================================================

Every run's manifest ``params`` name the sample (``sample``) and the command that made it
(``generated_by``). What the seed fixes: the image, the devices' link profiles, traces and
faults, and so the outcome table of a campaign whose scenario is robust (see
:mod:`labkit.fota.simulate`). What it does not fix: timestamps, ephemeral ports, the event
loop's lag (``distorted`` in a campaign's manifest) -- a live run is never byte-identical. A
busy CPU distorts a campaign at time scale 100 (the ``always`` one then loses connections a
quiet machine keeps), so a distorted campaign is run again, up to :data:`CAMPAIGN_TRIES`
times, and the run with the smallest lag is kept (``tries`` in its manifest).

The runs are made in a hidden staging folder next to ``out`` and moved into place only when
complete, so an interrupted regeneration leaves the previous samples as they were. Images are
signed with the lab key (``data/keys``, created on first use); no key is stored in a sample.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CAMPAIGN",
    "CAPTURE_NAME",
    "DEFAULT_SEED",
    "SAMPLES",
    "SampleReport",
    "make_samples",
    "sample_path",
    "samples_dir",
]

#: The seed of the committed samples.
DEFAULT_SEED = 7

#: The capture of the ``push-single`` update.
CAPTURE_NAME = "push-update.pcap"

#: Sample name -> what it is (the order of :func:`make_samples`).
SAMPLES: dict[str, str] = {
    "push-single": "one device, one PUSH (CoAP Block1, 512-byte blocks) of a signed 8 KiB image",
    "pull-single": "one device, one PULL of the same image over HTTP from the lab repository",
    "campaign-always": "50 simulated devices, mixed links, faults, policy always",
    "campaign-threshold": "the same 50 devices, faults and seed, policy threshold",
    CAPTURE_NAME: "tcpdump capture (loopback) of the push-single update",
}

#: The simulated campaign of both campaign samples (:func:`labkit.fota.simulate.simulate`).
CAMPAIGN: dict[str, Any] = {
    "devices": 50,
    "profile": "mixed",
    "method": "push",
    "image_size": 8192,
    "faults": "link-drop:0.06,boot-fail:0.04,no-flash:0.02",
    "time_scale": 100.0,
}

#: Image of the single-device samples.
IMAGE_VERSION = "2.0.0"
IMAGE_SIZE = 8192
PUSH_BLOCK_SIZE = 512

#: Devices of a campaign in fast mode (tests).
FAST_DEVICES = 10
#: Campaign runs at most, when the event loop's lag distorted the simulated timings (the run
#: with the smallest lag is kept).
CAMPAIGN_TRIES = 3
#: Wall-clock bound of one campaign (seconds).
CAMPAIGN_DEADLINE_S = 600.0
#: Seconds tcpdump gets past the end of the traffic (its ring-buffer timeout is 1 s).
CAPTURE_TAIL_S = 1.5


def samples_dir() -> Path:
    """``data/samples`` of this checkout (where the committed samples are).

    Found next to the ``labkit`` package (an editable install or a checkout); otherwise
    ``data/samples`` under the current directory.
    """
    here = Path(__file__).resolve().parent.parent / "data" / "samples"
    return here if here.is_dir() else Path.cwd() / "data" / "samples"


def sample_path(name: str) -> Path:
    """The path of one sample (``"campaign-threshold"``, ``"push-update.pcap"``...).

    Raises
    ------
    KeyError
        For a name that is not in :data:`SAMPLES` (the message lists them).
    FileNotFoundError
        When the sample was not generated (run ``python -m labkit.samples``).
    """
    if name not in SAMPLES:
        raise KeyError(f"no sample named {name!r}; the samples are: {', '.join(SAMPLES)}")
    path = samples_dir() / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m labkit.samples`")
    return path


@dataclasses.dataclass
class SampleReport:
    """What :func:`make_samples` made: the paths written and notes (a capture left out...)."""

    out: Path
    seed: int
    written: dict[str, Path] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def size_bytes(self) -> int:
        """Bytes of everything under ``out``."""
        return sum(p.stat().st_size for p in self.out.rglob("*") if p.is_file())

    def summary(self) -> str:
        lines = [f"{name:20s} {path}" for name, path in self.written.items()]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"total {self.size_bytes() / 1024:.0f} KiB in {self.out}")
        return "\n".join(lines)


def _command(out: Path, seed: int, fast: bool) -> str:
    words = ["python", "-m", "labkit.samples", "--out", str(out), "--seed", str(seed)]
    return " ".join([*words, "--fast"] if fast else words)


def _image(seed: int) -> bytes:
    from labkit.repo.images import build_image

    return build_image(version=IMAGE_VERSION, size=IMAGE_SIZE, seed=seed)


# -- the capture ------------------------------------------------------------------------------


@dataclasses.dataclass
class _Capture:
    path: Path
    lines: list[str] = dataclasses.field(default_factory=list)
    problem: str | None = None

    def count(self, what: str) -> int | None:
        for line in self.lines:
            if what in line:
                with contextlib.suppress(ValueError, IndexError):
                    return int(line.split()[0])
        return None


@contextlib.contextmanager
def _tcpdump(path: Path, port: int) -> Iterator[_Capture]:
    """Capture ``udp port PORT`` on ``lo`` into ``path`` while the block runs.

    Yields a :class:`_Capture` whose ``problem`` says why there is no capture (no tcpdump,
    not root, it did not start, the kernel dropped packets). Buffered (``-U``, not immediate
    mode, which drops packets under a block-wise transfer on a busy machine), so it waits
    :data:`CAPTURE_TAIL_S` after the block for the last packets to reach the file.
    """
    capture = _Capture(path)
    exe = shutil.which("tcpdump")
    if exe is None:
        capture.problem = "tcpdump is not installed"
        yield capture
        return
    argv = [exe, "-i", "lo", "-n", "-U", "-B", "8192", "-w", str(path)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv += ["-Z", "root"]  # keep root: do not drop to the tcpdump user, who cannot write
    proc = subprocess.Popen(  # a fixed argument list, no shell
        [*argv, f"udp port {port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    ready = threading.Event()

    def follow() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            capture.lines.append(line.strip())
            if "listening on" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=follow, name="labkit-samples-tcpdump", daemon=True)
    reader.start()
    try:
        if not ready.wait(10.0) or proc.poll() is not None:
            said = " ".join(capture.lines).strip() or "no output"
            capture.problem = f"tcpdump did not start (root needed to capture on lo?): {said}"
        yield capture
        if capture.problem is None:
            time.sleep(CAPTURE_TAIL_S)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
        reader.join(5.0)
        proc.stderr.close()
    if capture.problem is None:
        dropped = capture.count("dropped by kernel")
        if dropped is None or dropped > 0:
            capture.problem = f"tcpdump reported {dropped} packets dropped by the kernel"


# -- the single-device runs ------------------------------------------------------------------


def _single_run(
    staging: Path,
    name: str,
    *,
    seed: int,
    image: bytes,
    method: str,
    protocol: str,
    command: str,
    port: int = 0,
) -> Path:
    """One device, one update, recorded to ``staging/name``; raises if it did not succeed."""
    from labkit.runtime import Lab

    options: dict[str, Any] = {"block_size": PUSH_BLOCK_SIZE} if method == "push" else {}
    lab = Lab(record=staging, run_id=name, seed=seed, port=port)
    with lab:
        lab.add_device("sim-0001", firmware_version="1.0.0")
        outcome = lab.update(
            "sim-0001", image, method=method, protocol=protocol, timeout=30.0, **options
        )
        lab.recorder.manifest["params"].update(
            {
                "sample": name,
                "generated_by": command,
                "description": SAMPLES[name],
                "method": method,
                "protocol": protocol,
                "block_size": options.get("block_size"),
                "image_version": IMAGE_VERSION,
                "image_size": IMAGE_SIZE,
                "image_bytes": len(image),
                "result": outcome.result_line,
                "outcome": {k: v for k, v in outcome.as_row().items() if k != "uri"},
            }
        )
        run_dir = lab.run_dir
    if not outcome.success:
        raise RuntimeError(f"sample {name}: the update did not succeed: {outcome.summary}")
    assert run_dir is not None
    return run_dir


def _push_with_capture(
    staging: Path, *, seed: int, image: bytes, command: str, capture: bool
) -> tuple[Path, Path | None, str | None]:
    """The push-single run, captured by tcpdump when ``capture``: (run, pcap or None, note)."""
    from labkit.course import free_port

    if not capture:
        run = _single_run(
            staging,
            "push-single",
            seed=seed,
            image=image,
            method="push",
            protocol="coap",
            command=command,
        )
        return run, None, "capture not requested: push-update.pcap left out"
    port = free_port()
    pcap = staging / CAPTURE_NAME
    with _tcpdump(pcap, port) as cap:
        run = _single_run(
            staging,
            "push-single",
            seed=seed,
            image=image,
            method="push",
            protocol="coap",
            command=command,
            port=port,
        )
    if cap.problem is not None:
        pcap.unlink(missing_ok=True)
        return run, None, f"{CAPTURE_NAME} left out: {cap.problem}"
    from labkit.record.capture import import_capture

    imported = import_capture(pcap)
    if sorted(imported.devices) != ["sim-0001"] or imported.n_skipped:
        pcap.unlink(missing_ok=True)
        return (
            run,
            None,
            f"{CAPTURE_NAME} left out: it does not import cleanly\n" + (imported.summary()),
        )
    _update_params(
        run, {"capture": CAPTURE_NAME, "server_port": port, "capture_packets": imported.packets}
    )
    return run, pcap, None


def _update_params(run_dir: Path, params: dict[str, Any]) -> None:
    from labkit.record.recorder import write_manifest

    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.setdefault("params", {}).update(params)
    write_manifest(path, manifest)


# -- the campaigns ----------------------------------------------------------------------------


def _campaign(
    staging: Path, policy: str, *, seed: int, fast: bool, command: str, say: Callable[[str], None]
) -> Path:
    """One campaign sample in ``staging/campaign-POLICY``.

    When the event loop's lag distorted the simulated timings (``distorted`` in the manifest:
    a busy CPU), the campaign is run again, up to :data:`CAMPAIGN_TRIES` times, and the run
    with the smallest lag is kept.
    """
    from labkit.fota.simulate import simulate

    name = f"campaign-{policy}"
    config = dict(CAMPAIGN, devices=FAST_DEVICES) if fast else dict(CAMPAIGN)
    tries: list[tuple[float, Path]] = []
    for attempt in range(1, CAMPAIGN_TRIES + 1):
        run_dir = simulate(
            policy=policy,
            seed=seed,
            out=staging / f"try-{attempt}",
            run_id=name,
            deadline_s=CAMPAIGN_DEADLINE_S,
            **config,
        )
        params = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["params"]
        tries.append((float(params.get("loop_lag", {}).get("p95_ms", 0.0)), run_dir))
        if not params.get("distorted"):
            break
        if attempt < CAMPAIGN_TRIES:
            say(f"{name}: the event loop's lag distorted the simulated timings; once more")
    lag, best = min(tries, key=lambda t: t[0])
    if len(tries) > 1:
        say(f"{name}: kept the run with the smallest lag (p95 {lag:.1f} ms wall)")
    run_dir = staging / name
    os.replace(best, run_dir)
    for attempt in range(1, len(tries) + 1):
        shutil.rmtree(staging / f"try-{attempt}", ignore_errors=True)
    _update_params(
        run_dir,
        {
            "sample": name,
            "generated_by": command,
            "description": SAMPLES[name],
            "tries": len(tries),
        },
    )
    return run_dir


# -- all of them ------------------------------------------------------------------------------


def _install(staging: Path, out: Path, name: str) -> Path:
    """Move ``staging/name`` to ``out/name``, replacing what was there."""
    target = out / name
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    os.replace(staging / name, target)
    return target


def make_samples(
    out: str | Path = "data/samples",
    *,
    seed: int = DEFAULT_SEED,
    fast: bool = False,
    only: Sequence[str] | None = None,
    capture: bool = True,
    say: Callable[[str], None] | None = None,
) -> SampleReport:
    """Regenerate the sample runs (and the capture) in ``out``.

    Parameters
    ----------
    out:
        Folder of the samples (created if missing); each sample replaces its old version.
    seed:
        Seed of the image, the fleet's links, profiles and faults and the devices.
    fast:
        A 10-device campaign instead of 50 (tests); the single runs are the same.
    only:
        Names of :data:`SAMPLES` to make (default all). ``push-update.pcap`` comes with
        ``push-single``: regenerating that run replaces or removes the capture, which must
        always show the same update.
    capture:
        Capture the ``push-single`` update with tcpdump (needs tcpdump and root).
    say:
        Progress lines (default: stderr).

    Returns
    -------
    SampleReport
        The paths written and notes (why a capture was left out...).

    Raises
    ------
    KeyError
        For an unknown name in ``only``.
    RuntimeError
        When a single-device update did not succeed (nothing is replaced then).
    """
    speak = say if say is not None else (lambda text: print(text, file=sys.stderr, flush=True))
    wanted = list(SAMPLES) if only is None else list(only)
    unknown = [n for n in wanted if n not in SAMPLES]
    if unknown:
        raise KeyError(f"unknown samples {unknown}; the samples are: {', '.join(SAMPLES)}")
    if CAPTURE_NAME in wanted and "push-single" not in wanted:
        wanted.append("push-single")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    command = _command(out, seed, fast)
    report = SampleReport(out=out, seed=seed)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-staging-", dir=out.parent))
    try:
        image = _image(seed)
        made: list[str] = []
        if "push-single" in wanted:
            speak("push-single: one PUSH" + (", captured by tcpdump" if capture else ""))
            _, pcap, note = _push_with_capture(
                staging, seed=seed, image=image, command=command, capture=capture
            )
            made.append("push-single")
            if pcap is not None:
                made.append(CAPTURE_NAME)
            if note:
                report.notes.append(note)
                speak(note)
        if "pull-single" in wanted:
            speak("pull-single: one PULL over HTTP")
            _single_run(
                staging,
                "pull-single",
                seed=seed,
                image=image,
                method="pull",
                protocol="http",
                command=command,
            )
            made.append("pull-single")
        for policy in ("always", "threshold"):
            name = f"campaign-{policy}"
            if name in wanted:
                devices = FAST_DEVICES if fast else CAMPAIGN["devices"]
                speak(f"{name}: {devices} simulated devices (this takes a minute)")
                _campaign(staging, policy, seed=seed, fast=fast, command=command, say=speak)
                made.append(name)
        for name in made:
            report.written[name] = _install(staging, out, name)
        if "push-single" in made and CAPTURE_NAME not in made:
            stale = out / CAPTURE_NAME
            if stale.exists():
                stale.unlink()
                report.notes.append(f"removed the old {CAPTURE_NAME}: it showed another update")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


# -- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m labkit.samples",
        description="Regenerate the sample runs and capture of data/samples (seeded).",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("data/samples"),
        metavar="DIR",
        help="folder of the samples (default data/samples)",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed (default {DEFAULT_SEED})")
    p.add_argument("--fast", action="store_true", help=f"{FAST_DEVICES}-device campaigns")
    p.add_argument(
        "--only",
        action="append",
        choices=list(SAMPLES),
        metavar="NAME",
        help="make only this sample (repeatable): " + ", ".join(SAMPLES),
    )
    p.add_argument("--no-capture", action="store_true", help="no tcpdump capture")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = make_samples(
            args.out, seed=args.seed, fast=args.fast, only=args.only, capture=not args.no_capture
        )
    except RuntimeError as exc:
        print(f"labkit.samples: {exc}", file=sys.stderr, flush=True)
        return 1
    print(report.summary(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
