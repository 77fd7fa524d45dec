"""The ``labkit fota`` fault matrix: how often the RESULT line differs from the device's own result.

Not a speed figure but a correctness count, kept here because it runs real processes for
minutes: every case starts ``labkit device`` (with a fault, or with a normal device for a
broken package) and ``labkit fota`` as two separate processes on loopback, waits for the
``RESULT <code> <NAME>`` line, stops the device (SIGINT: it de-registers) and compares the
code with the device's own final Update Result, the last ``fw_result <ep> result=N`` line of
its stdout (0 when it never printed one). A run is *mislabelled* when the codes differ (a
``RESULT -`` line counts as mislabelled too: the device did report a code).

Cases: no-flash, no-ram, link-drop, corrupt-in-flash over PULL (coap) and PUSH; a package
signed with the wrong key, not an image, and boot-fail (each over PUSH and PULL coap).

Run it::

    python -m benchmarks --only mislabel            # N=20 per case (quick: N=1, no link-drop)
    python -m benchmarks.bench_mislabel --n 20 --jobs 2 [--labkit DIR] [--case no-ram-pull]

``--labkit DIR`` runs the processes against another checkout (``PYTHONPATH=DIR``), so that
the figure before and after a change is measured with the same script. ``--jobs`` runs that
many cases side by side (each its own pair of processes and ports).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import Goal, Options, Row, register

ROOT = Path(__file__).resolve().parent.parent

#: (case name, --fault or None, package kind, method)
CASES: tuple[tuple[str, str | None, str, str], ...] = tuple(
    (f"{fault}-{method}", fault, "good", method)
    for fault in ("no-flash", "no-ram", "link-drop", "corrupt-in-flash")
    for method in ("pull", "push")
) + tuple(
    (f"{name}-{method}", fault, kind, method)
    for name, fault, kind in (
        ("wrong-key", None, "wrong-key"),
        ("not-an-image", None, "not-an-image"),
        ("boot-fail", "boot-fail", "good"),
    )
    for method in ("push", "pull")
)

_RESULT = re.compile(r"^RESULT (\S+)")
_LISTEN = re.compile(r"^listening on coap://[^:]+:(\d+)")
_FW_RESULT = re.compile(r"^fw_result \S+ result=(\d+)")


@dataclass(frozen=True)
class Run:
    case: str
    reported: str  # the code of the RESULT line, or "-" / "none"
    device: int  # the device's own final result
    line: str

    @property
    def mislabelled(self) -> bool:
        return self.reported != str(self.device)


def _python() -> str:
    return sys.executable


def _env(labkit: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(labkit)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def build_images(labkit: Path, out: Path) -> dict[str, Path]:
    """The three packages of the matrix (good, wrong key, not an image), built once."""
    paths = {}
    for kind in ("good", "wrong-key", "not-an-image"):
        path = out / f"{kind}.bin"
        cmd = [_python(), "-m", "labkit", "image", "build", "--version", "2.0.0", "--size"]
        cmd += ["16384", "--out", str(path)]
        if kind != "good":
            cmd += ["--broken", kind]
        subprocess.run(cmd, env=_env(labkit), check=True, capture_output=True, timeout=120)
        paths[kind] = path
    return paths


def _reader(stream, lines: list[str], got: threading.Event, pattern: re.Pattern[str]) -> None:
    for raw in stream:
        line = raw.rstrip("\n")
        lines.append(line)
        if pattern.match(line):
            got.set()
    got.set()


def run_once(
    case: tuple[str, str | None, str, str], images: dict[str, Path], labkit: Path, endpoint: str
) -> Run:
    """One update of one case through two processes; never longer than ~150 s."""
    name, fault, kind, method = case
    env = _env(labkit)
    fota_cmd = [_python(), "-m", "labkit", "fota", "--listen", "127.0.0.1:0"]
    fota_cmd += ["--endpoint", endpoint, "--package", str(images[kind]), "--method", method]
    fota_cmd += ["--protocol", "coap", "--timeout", "30"]
    fota = subprocess.Popen(
        fota_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    fota_lines: list[str] = []
    listening = threading.Event()
    port_holder: list[int] = []

    def read_fota() -> None:
        assert fota.stdout is not None
        for raw in fota.stdout:
            line = raw.rstrip("\n")
            fota_lines.append(line)
            m = _LISTEN.match(line)
            if m:
                port_holder.append(int(m.group(1)))
                listening.set()
        listening.set()

    t_fota = threading.Thread(target=read_fota, daemon=True)
    t_fota.start()
    device: subprocess.Popen[str] | None = None
    dev_lines: list[str] = []
    try:
        listening.wait(60)
        if not port_holder:
            return Run(name, "none", -1, "fota did not start: " + " | ".join(fota_lines[-3:]))
        dev_cmd = [_python(), "-m", "labkit", "device", "--server"]
        dev_cmd += [f"coap://127.0.0.1:{port_holder[0]}", "--endpoint", endpoint]
        dev_cmd += ["--firmware-version", "1.0.0"]
        if fault is not None:
            dev_cmd += ["--fault", fault]
        device = subprocess.Popen(
            dev_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        dev_done = threading.Event()
        t_dev = threading.Thread(
            target=_reader,
            args=(device.stdout, dev_lines, dev_done, re.compile(r"^$^")),
            daemon=True,
        )
        t_dev.start()
        try:
            fota.wait(150)
        except subprocess.TimeoutExpired:
            fota.kill()
            fota.wait(10)
        t_fota.join(10)
    finally:
        if fota.poll() is None:
            fota.kill()
            fota.wait(10)
        if device is not None and device.poll() is None:
            device.send_signal(signal.SIGINT)
            try:
                device.wait(15)
            except subprocess.TimeoutExpired:
                device.kill()
                device.wait(10)
    result_line = next((ln for ln in reversed(fota_lines) if _RESULT.match(ln)), "")
    m = _RESULT.match(result_line)
    reported = m.group(1) if m else "none"
    own = 0
    for line in dev_lines:
        fm = _FW_RESULT.match(line)
        if fm:
            own = int(fm.group(1))
    outcome = next((ln for ln in fota_lines if ln.startswith("outcome:")), result_line)
    if reported != str(own) and os.environ.get("LABKIT_MISLABEL_DEBUG"):
        outcome += " || device: " + " | ".join(dev_lines[-6:])
    return Run(name, reported, own, outcome)


def measure(
    n: int,
    labkit: Path = ROOT,
    cases: Sequence[str] | None = None,
    jobs: int = 1,
    verbose: bool = True,
) -> list[Run]:
    """Run every case ``n`` times; returns every run."""
    chosen = [c for c in CASES if not cases or c[0] in cases]
    with tempfile.TemporaryDirectory(prefix="labkit-mislabel-") as tmp:
        images = build_images(labkit, Path(tmp))
        work = [(c, i) for i in range(n) for c in chosen]
        runs: list[Run] = []

        def one(item: tuple[tuple[str, str | None, str, str], int]) -> Run:
            case, i = item
            run = run_once(case, images, labkit, f"mis-{case[0]}-{i}")
            if verbose:
                flag = "MISLABEL" if run.mislabelled else "ok"
                print(
                    f"{case[0]:24} #{i:<3} reported {run.reported:>4} device {run.device:>2} "
                    f"{flag}" + (f"  [{run.line}]" if run.mislabelled else ""),
                    file=sys.stderr,
                    flush=True,
                )
            return run

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            runs = list(pool.map(one, work))
    return runs


def summary(runs: Sequence[Run]) -> str:
    lines = []
    by_case: dict[str, list[Run]] = {}
    for run in runs:
        by_case.setdefault(run.case, []).append(run)
    for case, rs in by_case.items():
        bad = sum(r.mislabelled for r in rs)
        reported = sorted({r.reported for r in rs})
        own = sorted({r.device for r in rs})
        lines.append(
            f"{case:24} {bad:3}/{len(rs):<3} mislabelled  reported {','.join(reported)}  "
            f"device {','.join(map(str, own))}"
        )
    total_bad = sum(r.mislabelled for r in runs)
    lines.append(f"{'total':24} {total_bad:3}/{len(runs):<3} mislabelled")
    return "\n".join(lines)


@register("mislabel", "labkit fota fault matrix: RESULT vs the device's own result")
def bench_mislabel(options: Options) -> list[Row]:
    n = int(os.environ.get("LABKIT_MISLABEL_N", options.pick(20, 1)))
    # quick: without the link-drop cases (the link stays down 20 s in each)
    cases = None if not options.quick else [c[0] for c in CASES if c[1] != "link-drop"]
    started = time.perf_counter()
    runs = measure(n, cases=cases, jobs=int(os.environ.get("LABKIT_MISLABEL_JOBS", "1")))
    took = time.perf_counter() - started
    bad = sum(r.mislabelled for r in runs)
    print(summary(runs), file=sys.stderr, flush=True)
    return [
        Row(
            key="mislabel",
            what=f"fault matrix, {n} runs per case, {len(runs) // max(1, n)} cases",
            goal=Goal(on="lab", op="<=", value=0, text="0 mislabelled"),
            lab=float(bad),
            unit=f"of {len(runs)}",
            note=f"{bad} of {len(runs)} RESULT lines differ from the device's own result "
            f"({took:.0f} s)",
        )
    ]


@register("hostile", "seeded updates against hostile-notification devices: server vs device")
def bench_hostile(options: Options) -> list[Row]:
    """``tests.fota.hostile_cases``: N updates (500; quick 44) covering Update Results 1-11."""
    import asyncio

    from tests.fota.hostile_cases import make_cases, run_cases

    n = int(options.pick(500, 22))
    started = time.perf_counter()
    verdicts = asyncio.run(run_cases(make_cases(n, seed=13), concurrency=4))
    took = time.perf_counter() - started
    bad = [v for v in verdicts if not v.agrees]
    for v in bad:
        print("DISAGREES", v.describe(), file=sys.stderr, flush=True)
    return [
        Row(
            key="hostile",
            what=f"{n} seeded updates, hostile notifications, Results 1-11",
            goal=Goal(on="lab", op="<=", value=0, text="0 disagree"),
            lab=float(len(bad)),
            unit=f"of {n}",
            note=f"{len(bad)} of {n} concluded results differ from the device's own ({took:.0f} s)",
        )
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_mislabel")
    p.add_argument("--n", type=int, default=20, help="runs per case (20)")
    p.add_argument("--jobs", type=int, default=1, help="cases run side by side (1)")
    p.add_argument("--labkit", type=Path, default=ROOT, help="checkout to run (this one)")
    p.add_argument("--case", action="append", choices=[c[0] for c in CASES], help="only these")
    args = p.parse_args(argv)
    runs = measure(args.n, args.labkit.resolve(), args.case, args.jobs)
    print(summary(runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
