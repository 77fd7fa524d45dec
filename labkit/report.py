"""``labkit report RUN --out DIR``: a saved run's pictures as PNG files plus a summary table.

:func:`write_report` loads a run (a :class:`~labkit.record.Run` or its directory), draws the
plots of :mod:`labkit.plots` into PNG files and writes ``summary.md``: the run's identity and
parameters, the Update Result table, attempts per method, and every picture with a sentence
saying what it shows -- the same pictures a notebook draws, without Jupyter. Plots that would
have nothing to show (a run without decisions has no decision scatter) are left out and listed.

This module only reads the run and writes into ``out_dir``; it never changes the run. The
command-line glue is :func:`configure_parser` (the arguments) and :func:`run_report` (the body,
returning an exit code: 0 written, 1 the run could not be read).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from labkit.lwm2m.objects import UpdateResult
from labkit.record.derived import attempts as attempts_table
from labkit.record.derived import decisions as decisions_table
from labkit.record.runs import DEFAULT_RUNS_DIR, Run, RunError, read_run

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "SUMMARY_NAME",
    "add_report_parser",
    "configure_parser",
    "resolve_run",
    "run_report",
    "write_report",
]

SUMMARY_NAME = "summary.md"
DEFAULT_DPI = 130


@dataclass(frozen=True)
class _Picture:
    file: str
    caption: str
    draw: Callable[[], Axes]


def resolve_run(run: str | Path, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> Path:
    """A run directory from a path, or from a run id under ``runs_dir`` (``data/runs``)."""
    p = Path(run)
    if p.exists():
        return p
    candidate = Path(runs_dir) / str(run)
    return candidate if candidate.exists() else p


def _thresholds(run: Run, given: Mapping[str, float] | None) -> dict[str, float]:
    """Thresholds to draw: given, else the manifest's ``thresholds``, else its policy's."""
    if given is not None:
        return dict(given)
    params = run.params
    found = params.get("thresholds")
    if isinstance(found, Mapping):
        return {str(k): float(v) for k, v in found.items() if isinstance(v, int | float)}
    name = params.get("policy")
    if isinstance(name, str):
        try:
            from labkit.policy import make_policy, policy_thresholds

            extra = params.get("policy_params")
            policy = make_policy(name, **(extra if isinstance(extra, dict) else {}))
            return policy_thresholds(policy)
        except (ImportError, ValueError, TypeError):
            return {}
    return {}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "device"


def _md(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _seconds(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "–"
    value = float(value)
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


def _pick_devices(att: pd.DataFrame) -> list[str]:
    """Devices worth a detailed timeline: one that retried, one whose last attempt failed,
    one that succeeded first time (at most two, in that preference)."""
    from labkit.plots._util import natural_key

    if len(att) == 0:
        return []
    a = att.assign(device=att["device"].astype(str))
    last = a.groupby("device", sort=False).tail(1)
    n = a.groupby("device", sort=False).size()
    chosen: list[str] = []

    def first(devices: list[str]) -> None:
        for d in sorted(devices, key=natural_key):
            if d not in chosen:
                chosen.append(d)
                return

    first([d for d in n.index if n[d] >= 2])
    first(last.loc[~last["success"].to_numpy(dtype=bool), "device"].tolist())
    first(last.loc[last["success"].to_numpy(dtype=bool), "device"].tolist())
    return chosen[:2]


def _pictures(run: Run, thresholds: dict[str, float]) -> tuple[list[_Picture], list[str]]:
    from labkit import plots

    ev = run.events
    att = attempts_table(ev) if len(ev) else None
    dec = decisions_table(ev) if len(ev) else None
    pics: list[_Picture] = []
    skipped: list[str] = []
    if len(ev) == 0:
        return pics, ["every picture: the run has no events"]
    pics.append(
        _Picture(
            "fleet_timeline.png",
            "One lane per device: its /5 State over time (light grey IDLE, hatched blue "
            "DOWNLOADING, dotted green DOWNLOADED, crossed indigo UPDATING) and the Update Result "
            "that ended each attempt, marked at its end; ✕ marks where the policy gave up. "
            "Sorted by outcome: successes first, then failures by code.",
            lambda: plots.plot_fleet_timeline(ev, sort_by="outcome"),
        )
    )
    devices = _pick_devices(att) if att is not None else []
    for d in devices:
        pics.append(
            _Picture(
                f"state_timeline_{_safe(d)}.png",
                f"Device {d} in detail: one lane per /5 State, its Update Result reports "
                "(code written next to each mark), firmware version at each change, "
                "registrations (dotted) and reboots (dashed).",
                lambda d=d: plots.plot_state_timeline(ev, d),  # type: ignore[misc]
            )
        )
    if not devices:
        skipped.append("state timeline: no device started an update attempt")
    has_link = bool((ev["rssi_dbm"].notna() | ev["link_quality"].notna()).any())
    if dec is not None and len(dec):
        pics.append(
            _Picture(
                "link_decisions.png",
                "The device with the most policy decisions: RSSI (solid) and Link Quality "
                "(dashed, right axis) over time, each decision marked at the RSSI it saw "
                "(push ▲, wait ●, pull ■, give up ✕), the policy's thresholds as horizontal "
                "lines, update attempts shaded.",
                lambda: plots.plot_link_decisions(ev, thresholds=thresholds),
            )
        )
        if dec["rssi_dbm"].notna().any():
            pics.append(
                _Picture(
                    "decision_scatter.png",
                    "Every decision of the run against the RSSI sample it was based on, one "
                    "row per decision kind; the threshold is where wait turns into push.",
                    lambda: plots.plot_decision_scatter(dec, thresholds=thresholds),
                )
            )
        else:
            skipped.append("decision scatter: no decision had an RSSI sample")
    elif has_link:
        skipped.append("link and decisions: no policy decisions were recorded")
    else:
        skipped.append("link and decisions: no link samples or decisions were recorded")
    if att is not None and att["result"].notna().any():
        pics.append(
            _Picture(
                "result_counts.png",
                "How many update attempts ended with each Update Result (/5/0/5 code and "
                "name); green is SUCCESS, vermillion a failure.",
                lambda: plots.plot_result_counts(att),
            )
        )
        for col in ("method", "wave"):
            if att[col].nunique(dropna=True) >= 2:
                pics.append(
                    _Picture(
                        f"result_share_by_{col}.png",
                        f"The same results as a share of each {col}'s attempts, one bar per "
                        f"{col} (colour and hatch), so groups of different size compare.",
                        lambda col=col: plots.plot_result_counts(att, by=col, share=True),  # type: ignore[misc]
                    )
                )
    else:
        skipped.append("result counts: no attempt reported a result")
    blocks = ev.loc[(ev["kind"] == "block").to_numpy(dtype=bool)]
    if len(blocks):
        by_protocol = blocks["protocol"].nunique(dropna=True) >= 2
        pics.append(
            _Picture(
                "download_progress.png",
                "Bytes received over time for each device, from the start of each transfer"
                + (" (colour and line style: transfer protocol)" if by_protocol else "")
                + "; a dot ends each transfer (below the dotted image-size line: broken off).",
                lambda: plots.plot_download_progress(
                    ev, by="protocol" if by_protocol else "device"
                ),
            )
        )
    else:
        skipped.append("download progress: no block transfers were recorded")
    if att is not None and len(att):
        by = "method" if att["method"].nunique(dropna=True) >= 2 else None
        pics.append(
            _Picture(
                "time_to_success.png",
                "Share of update attempts that had succeeded, against the time since the "
                "attempt started"
                + (", one line per method" if by else "")
                + "; the curve ends at the success rate.",
                lambda: plots.plot_time_to_success(att, by=by),
            )
        )
    return pics, skipped


def _summary(
    run: Run, written: list[tuple[Path, str]], skipped: list[str], thresholds: dict[str, float]
) -> str:
    ev = run.events
    att = attempts_table(ev) if len(ev) else None
    lines = [f"# Run `{_md(run.run_id)}`", ""]
    m = run.manifest
    n_dev = int(ev["device"].nunique()) if len(ev) else 0
    lines += [
        "| | |",
        "|---|---|",
        f"| path | `{_md(run.path)}` |",
        f"| created | {_md(m.get('created_at'))} |",
        f"| finished | {_md(m.get('finished_at') or 'not closed (incomplete run)')} |",
        f"| schema version | {_md(m.get('schema_version'))} |",
        f"| events | {len(ev)} |",
        f"| devices | {n_dev} |",
    ]
    if len(ev):
        span = (ev["ts"].max() - ev["ts"].min()).total_seconds()
        lines.append(f"| duration (lab clock) | {_seconds(span)} |")
    lines.append("")
    params = run.params
    lines += ["## Parameters", ""]
    if params:
        lines += ["| parameter | value |", "|---|---|"]
        lines += [f"| {_md(k)} | {_md(v)} |" for k, v in params.items()]
    else:
        lines.append("No parameters were stored in the manifest.")
    if thresholds:
        drawn = ", ".join(f"{_md(k)} = {v:g}" for k, v in thresholds.items())
        lines += ["", f"Policy thresholds drawn in the link plots: {drawn}."]
    versions = m.get("versions")
    if isinstance(versions, dict) and versions:
        lines += ["", "Versions: " + ", ".join(f"{_md(k)} {_md(v)}" for k, v in versions.items())]
    lines.append("")

    lines += ["## Outcome", ""]
    if att is None or len(att) == 0:
        lines += ["No update attempt was started in this run.", ""]
    else:
        n = len(att)
        ok = int(att["success"].sum())
        finished = int(att["finished"].sum())
        updated = att.loc[att["success"].to_numpy(dtype=bool), "device"].nunique()
        good = att.loc[att["success"].to_numpy(dtype=bool)]
        lines += [
            f"- **{n}** update attempts on **{att['device'].nunique()}** of {n_dev} devices; "
            f"**{ok}** succeeded ({ok / n:.0%}), {finished - ok} failed, "
            f"{n - finished} unfinished at the end of the run.",
            f"- **{updated}** of {n_dev} devices run the new firmware after the run.",
            f"- Successful attempts: median duration {_seconds(good['duration_s'].median())}, "
            f"median download {_seconds(good['download_s'].astype('float64').median())}, "
            f"median install and reboot {_seconds(good['update_s'].astype('float64').median())}.",
            "",
        ]
        from labkit.record.derived import result_counts

        counts = result_counts(att)
        lines += [
            "### Update Results (/5/0/5)",
            "",
            "| code | result | meaning | attempts | share |",
            "|---:|---|---|---:|---:|",
        ]
        for row in counts.itertuples(index=False):
            r = UpdateResult(int(row.code))
            lines.append(
                f"| {int(r)} | {r.name} | {r.description} | {int(row.count)} | {row.share:.0%} |"
            )
        unfinished = n - int(counts["count"].sum())
        if unfinished:
            lines.append(f"| | | no result reported | {unfinished} | |")
        lines.append("")
        a = att.assign(method=att["method"].astype("string").fillna("unknown"))
        lines += [
            "### Attempts by method",
            "",
            "| method | attempts | succeeded | success rate | median duration | "
            "median download | retransmitted blocks |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for method, g in a.groupby("method", sort=True):
            k = int(g["success"].sum())
            lines.append(
                f"| {_md(method)} | {len(g)} | {k} | {k / len(g):.0%} | "
                f"{_seconds(g['duration_s'].median())} | "
                f"{_seconds(g['download_s'].astype('float64').median())} | "
                f"{int(g['retransmissions'].sum())} |"
            )
        lines.append("")
    dec = decisions_table(ev) if len(ev) else None
    if dec is not None and len(dec):
        vc = dec["decision"].astype(str).value_counts()
        lines += [
            "### Policy decisions",
            "",
            ", ".join(f"{_md(k)}: {int(v)}" for k, v in vc.items()),
            "",
        ]

    lines += ["## Pictures", ""]
    for path, caption in written:
        lines += [
            f"### {path.stem.replace('_', ' ')}",
            "",
            caption,
            "",
            f"![{path.stem}]({path.name})",
            "",
        ]
    if skipped:
        lines += ["Not drawn:", ""] + [f"- {_md(s)}" for s in skipped] + [""]
    return "\n".join(lines)


def write_report(
    run_or_path: Run | str | Path,
    out_dir: str | Path,
    *,
    dpi: int = DEFAULT_DPI,
    thresholds: Mapping[str, float] | None = None,
) -> list[Path]:
    """Write a run's plots as PNG files and ``summary.md`` into ``out_dir``.

    Parameters
    ----------
    run_or_path : Run, str or Path
        A loaded run, or its directory (read with :func:`labkit.record.read_run`).
    out_dir : str or Path
        Created if missing; files of the same name are overwritten.
    dpi : int
        Resolution of the PNG files (130: a 10 in wide plot is 1300 pixels).
    thresholds : mapping, optional
        Policy thresholds to draw (``{"min_rssi_dbm": -105}``); default the manifest's
        ``thresholds``, else those of its ``policy`` parameter.

    Returns
    -------
    list of Path
        The files written: the PNG files in drawing order, then ``summary.md``.

    Raises
    ------
    labkit.record.RunError
        When the run cannot be read.
    """
    import matplotlib.pyplot as plt

    run = run_or_path if isinstance(run_or_path, Run) else read_run(run_or_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drawn = _thresholds(run, thresholds)
    pictures, skipped = _pictures(run, drawn)
    written: list[tuple[Path, str]] = []
    for pic in pictures:
        ax = pic.draw()
        fig = ax.figure
        try:
            path = out / pic.file
            fig.savefig(path, dpi=dpi, facecolor="white")  # type: ignore[union-attr]
            written.append((path, pic.caption))
        finally:
            plt.close(fig)  # type: ignore[arg-type]
    summary = out / SUMMARY_NAME
    summary.write_text(_summary(run, written, skipped, drawn), encoding="utf-8")
    return [p for p, _ in written] + [summary]


# -- command line ---------------------------------------------------------------------------


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of ``labkit report``: ``RUN --out DIR [--dpi N] [--runs-dir DIR]``."""
    p.add_argument("run", metavar="RUN", help="run directory, or a run id under --runs-dir, or "
                   "a sweep directory (labkit sweep)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="write files here")
    p.add_argument("--dpi", type=int, default=DEFAULT_DPI, help=f"PNG resolution ({DEFAULT_DPI})")
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=DEFAULT_RUNS_DIR,
        metavar="DIR",
        help=f"where run ids are looked up (default {DEFAULT_RUNS_DIR})",
    )


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``report`` to an argparse subparsers object (``func`` default: :func:`run_report`)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="PNG plots + summary table of a run"
    )
    configure_parser(p)
    p.set_defaults(func=run_report)
    return p


def run_report(args: argparse.Namespace) -> int:
    """Body of ``labkit report``: prints each file written; 0 on success, 1 if unreadable."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window from the command line
    path = resolve_run(args.run, getattr(args, "runs_dir", DEFAULT_RUNS_DIR))
    from labkit.sweep.store import is_sweep_dir

    if is_sweep_dir(path):  # a sweep directory: its own report (labkit/sweep/report.py)
        from labkit.sweep.report import write_sweep_report

        for f in write_sweep_report(path, args.out, dpi=args.dpi):
            print(f"wrote {f}", flush=True)
        return 0
    try:
        files = write_report(path, args.out, dpi=args.dpi)
    except RunError as exc:
        print(f"labkit: {exc}", file=sys.stderr, flush=True)
        return 1
    for f in files:
        print(f"wrote {f}", flush=True)
    return 0
