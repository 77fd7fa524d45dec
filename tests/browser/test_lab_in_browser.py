"""The lab as its users meet it: ``labkit lab`` (JupyterLab) driven by a real browser.

Executing notebooks with nbclient (``tests/test_notebooks_run.py``) proves the kernel side;
this test proves the front end: JupyterLab serves the notebooks, the cells run from the page,
matplotlib's images arrive and ipywidgets are drawn by JupyterLab's widget manager.

It starts ``labkit lab`` on a free loopback port with a copy of notebooks 00, 02 and 07 (so
that nothing the browser saves touches ``notebooks/``), in fast mode (``LABKIT_FAST=1``), and drives
Debian's ``chromium`` through Playwright (from PyPI; no browser download: Playwright launches
``/usr/bin/chromium`` with a fresh profile, headless, no network beyond loopback). For each
notebook it runs all cells from the page and checks: every code cell ran, no error or stderr
output, no JavaScript error on the page (uncaught exceptions and console errors). In 00 the
State timeline is an image in the page; in 02 Mermaid draws the /5 teaching diagram (the
generated text is valid Mermaid); in 07 the fleet dashboard widget shows one row per device
and changes while the campaign runs (a device seen downloading or updating, firmware 2.0.0 at
the end). On failure a screenshot is saved in the test's temporary directory and the
message names it.

JupyterLab is started with ``--LabApp.expose_app_in_browser`` so that the test reads the
notebook model (cells, execution counts, outputs) from ``window.jupyterapp`` rather than from
pixels; notebook windowing is off so every cell is in the page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (pip) is not installed")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("00_tour.ipynb", "02_firmware_update_object.ipynb", "07_fleet_campaign.ipynb")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "labkit-browser-test"
#: Seconds for JupyterLab to answer, a kernel to start, a notebook to run (bounds, not sleeps).
SERVER_START_S = 90.0
KERNEL_START_S = 90.0
NOTEBOOK_RUN_S = 180.0

if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )

# -- the JupyterLab server -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_settings(directory: Path) -> None:
    """JupyterLab user settings of the run: every cell in the page (no windowing), no news."""
    settings = {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for key, values in settings.items():
        package, plugin = key.rsplit("/", 1)
        path = directory / package / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``labkit lab`` on a free loopback port over a copy of notebooks 00 and 07."""
    home = tmp_path_factory.mktemp("lab")
    notebooks = home / "notebooks"
    notebooks.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, notebooks / name)
    _write_settings(home / "lab-settings")
    env = dict(os.environ)
    env.pop("JUPYTER_PATH", None)
    env.pop("MPLBACKEND", None)  # the kernel's inline backend draws PNGs
    env.update(
        LABKIT_FAST="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
        JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    port = _free_port()
    argv = [
        sys.executable,
        "-m",
        "labkit",
        "lab",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--notebooks",
        str(notebooks),
        "--",
        f"--IdentityProvider.token={TOKEN}",
        "--LabApp.expose_app_in_browser=True",
    ]
    log_path = home / "jupyterlab.log"
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            argv,
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"labkit lab did not come up on {url}: "
                        f"{log_path.read_text(encoding='utf-8')[-2000:]}"
                    ) from None
                time.sleep(0.25)  # polling a server that is starting; the bound is above
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's chromium through Playwright, headless, with a fresh profile."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


class Page:
    """One notebook open in the browser, with the JavaScript errors seen on its page."""

    def __init__(self, context: Any, url: str, shots: Path, name: str) -> None:
        self.page = context.new_page()
        self.shots = shots
        self.name = name
        self.js_errors: list[str] = []
        self.focus: int | None = None  # the cell a failure screenshot shows
        self.page.on("pageerror", lambda exc: self.js_errors.append(f"uncaught: {exc}"))
        self.page.on(
            "console",
            lambda msg: (
                self.js_errors.append(f"console: {msg.text}") if msg.type == "error" else None
            ),
        )
        self.page.goto(f"{url}/lab/tree/{name}?token={TOKEN}", timeout=KERNEL_START_S * 1000)
        self.page.wait_for_function(
            """(name) => {
                const app = window.jupyterapp;
                const nb = app && app.shell.currentWidget;
                const kernel = nb && nb.sessionContext && nb.sessionContext.session
                    && nb.sessionContext.session.kernel;
                return nb && nb.context.path === name && kernel && kernel.status === 'idle';
            }""",
            arg=name,
            timeout=KERNEL_START_S * 1000,
        )

    def run_all(self) -> None:
        """Start 'Run All Cells' and return at once."""
        self.page.evaluate(
            "() => { window.labkitRun = window.jupyterapp.commands"
            ".execute('notebook:run-all-cells'); }"
        )

    def done(self) -> bool:
        """True once every code cell has run and the kernel is idle again."""
        return bool(
            self.page.evaluate(
                """() => {
                    const nb = window.jupyterapp.shell.currentWidget;
                    const cells = nb.content.model.cells;
                    for (let i = 0; i < cells.length; i++) {
                        const c = cells.get(i);
                        if (c.type === 'code' && !c.executionCount) return false;
                    }
                    return nb.sessionContext.session.kernel.status === 'idle';
                }"""
            )
        )

    def wait_done(self) -> None:
        self.page.wait_for_function(
            "() => window.labkitRun !== undefined", timeout=NOTEBOOK_RUN_S * 1000
        )
        deadline = time.monotonic() + NOTEBOOK_RUN_S
        while not self.done():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not finish within {NOTEBOOK_RUN_S:g} s")
            self.page.wait_for_timeout(200)

    def cells(self) -> list[dict[str, Any]]:
        """Every code cell: index, source, execution count and outputs (as nbformat JSON)."""
        return list(
            self.page.evaluate(
                """() => {
                    const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
                    const out = [];
                    for (let i = 0; i < cells.length; i++) {
                        const c = cells.get(i);
                        if (c.type !== 'code') continue;
                        out.push({index: i, source: c.sharedModel.getSource(),
                                  count: c.executionCount, outputs: c.outputs.toJSON()});
                    }
                    return out;
                }"""
            )
        )

    def cell_node_eval(self, index: int, script: str) -> Any:
        """Evaluate ``script`` (a function of the cell's DOM node) on cell ``index``."""
        return self.page.evaluate(
            f"""(i) => {{
                const node = window.jupyterapp.shell.currentWidget.content.widgets[i].node;
                return ({script})(node);
            }}""",
            index,
        )

    def check_clean_run(self) -> list[dict[str, Any]]:
        """Every code cell ran, none has an error or stderr output, the page has no JS error."""
        cells = self.cells()
        not_run = [c["index"] for c in cells if not c["count"]]
        assert not not_run, f"{self.name}: cells {not_run} did not run"
        problems = [
            f"cell {c['index']}: {o.get('ename') or o.get('name')}: "
            f"{(o.get('evalue') or ''.join(o.get('text', '')))[:300]}"
            for c in cells
            for o in c["outputs"]
            if o["output_type"] == "error"
            or (o["output_type"] == "stream" and o.get("name") == "stderr")
        ]
        assert not problems, f"{self.name}: error outputs {problems}"
        shown = self.page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count()
        assert shown == 0, f"{self.name}: {shown} error/stderr outputs in the page"
        assert not self.js_errors, f"{self.name}: JavaScript errors {self.js_errors}"
        return cells

    @contextlib.contextmanager
    def screenshot_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            path = self.shots / f"{Path(self.name).stem}-failure.png"
            with contextlib.suppress(Exception):
                if self.focus is not None:
                    self.cell_node_eval(self.focus, "(node) => node.scrollIntoView()")
                self.page.screenshot(path=str(path))
            raise AssertionError(f"{exc}\nscreenshot of the page: {path}") from exc


def _cell_with(cells: list[dict[str, Any]], text: str) -> dict[str, Any]:
    found = [c for c in cells if text in c["source"]]
    assert found, f"no code cell contains {text!r}"
    return found[0]


# -- the tests -----------------------------------------------------------------------------


def test_tour_runs_in_the_browser_and_shows_its_state_timeline(
    lab_url: str, browser: Any, tmp_path: Path
) -> None:
    nb = Page(browser, lab_url, tmp_path, "00_tour.ipynb")
    with nb.screenshot_on_failure():
        nb.run_all()
        nb.wait_done()
        cells = nb.check_clean_run()
        timeline = _cell_with(cells, "plot_state_timeline(")
        nb.focus = timeline["index"]
        assert any("image/png" in o.get("data", {}) for o in timeline["outputs"]), (
            "the State timeline cell has no image/png output"
        )
        widths = nb.cell_node_eval(
            timeline["index"],
            "(node) => Array.from(node.querySelectorAll('.jp-OutputArea-output img'))"
            ".map((img) => img.naturalWidth)",
        )
        assert widths and max(widths) > 100, f"State timeline image not drawn: {widths}"


def test_the_state_diagram_of_notebook_02_is_drawn(
    lab_url: str, browser: Any, tmp_path: Path
) -> None:
    """The teaching diagram is valid Mermaid: JupyterLab draws it as an SVG with the four
    States (a diagram Mermaid cannot read is drawn as a syntax error instead)."""
    nb = Page(browser, lab_url, tmp_path, "02_firmware_update_object.ipynb")
    with nb.screenshot_on_failure():
        nb.run_all()
        nb.wait_done()
        cells = nb.check_clean_run()
        diagram = _cell_with(cells, "teaching_diagram()")
        nb.focus = diagram["index"]
        # JupyterLab draws a ```mermaid block as an <img> of the SVG Mermaid made, or, when
        # Mermaid cannot read it, as the source in a warning box (no <img>)
        nb.page.wait_for_function(
            """(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].node
                .querySelector('.jp-RenderedMermaid img, .jp-RenderedMermaid details')""",
            arg=diagram["index"],
            timeout=30_000,
        )
        drawn = nb.cell_node_eval(
            diagram["index"], "(node) => !!node.querySelector('.jp-RenderedMermaid img')"
        )
        assert drawn, "Mermaid could not draw the teaching diagram (shown as source instead)"
        text = nb.cell_node_eval(
            diagram["index"],
            "(node) => decodeURIComponent(node.querySelector('.jp-RenderedMermaid img').src)",
        )
        for state in ("IDLE", "DOWNLOADING", "DOWNLOADED", "UPDATING"):
            assert f">{state}<" in text, f"the diagram has no {state}: {text[-300:]!r}"
        assert "Syntax error" not in text, f"Mermaid could not read the diagram: {text[:300]!r}"


_DASHBOARD_ROWS = """(node) => {
    const rows = Array.from(node.querySelectorAll('.widget-html-content table tbody tr'));
    return rows.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.innerText.trim()));
}"""


def test_fleet_campaign_dashboard_is_drawn_and_follows_the_campaign(
    lab_url: str, browser: Any, tmp_path: Path
) -> None:
    nb = Page(browser, lab_url, tmp_path, "07_fleet_campaign.ipynb")
    with nb.screenshot_on_failure():
        source = (ROOT / "notebooks" / "07_fleet_campaign.py").read_text(encoding="utf-8")
        match = re.search(r"^DEVICES = (\d+) if FAST", source, re.M)
        assert match, "07_fleet_campaign.py: no `DEVICES = N if FAST` parameter"
        devices = int(match.group(1))
        nb.run_all()
        index = nb.focus = _cell_with(nb.cells(), "FleetDashboard(lab)")["index"]
        snapshots: list[tuple[tuple[str, ...], ...]] = []
        deadline = time.monotonic() + NOTEBOOK_RUN_S
        while True:  # watch the widget while the cells run: what a student sees
            rows = nb.cell_node_eval(index, _DASHBOARD_ROWS)
            if rows and (not snapshots or tuple(map(tuple, rows)) != snapshots[-1]):
                snapshots.append(tuple(tuple(r) for r in rows))
            if nb.done():
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"07 did not finish within {NOTEBOOK_RUN_S:g} s")
            nb.page.wait_for_timeout(100)
        nb.check_clean_run()
        assert snapshots, "the fleet dashboard was never drawn in the page"
        counts = {len(s) for s in snapshots}
        assert counts == {devices}, f"dashboard rows {counts}, expected one per device ({devices})"
        states = {row[2] for snap in snapshots for row in snap}
        moving = {s for s in states if "DOWNLOADING" in s or "UPDATING" in s or "DOWNLOADED" in s}
        assert moving, f"the dashboard never showed a device mid-update; states seen: {states}"
        assert len(snapshots) >= 3, f"the dashboard changed only {len(snapshots) - 1} times"
        final = snapshots[-1]
        assert any(row[4] == "2.0.0" for row in final), "no device shows firmware 2.0.0 at the end"
        print(f"dashboard: {len(snapshots)} pictures, {devices} rows, states seen {sorted(states)}")
