"""Live plots: any labkit plot, redrawn in place while the lab runs, a few times a second at most.

:class:`LivePlot` wraps a plot function of :mod:`labkit.plots` (any ``fn(data, *, ax=None,
**kwargs) -> Axes``)::

    LivePlot(lab, plot_fleet_timeline)                           # the whole fleet
    LivePlot(lab, plot_link_decisions, device="sim-0001", interval=1.0)

When new events arrive, a worker thread reads the run's event table (``lab.events()``), draws
into a fresh matplotlib :class:`~matplotlib.figure.Figure` with the Agg canvas (no pyplot: no
global state, no figure piling up, safe off the main thread), and puts the PNG into an
``ipywidgets.Image``: the picture changes in place, the notebook cell is not re-run. Redraws
happen at most once per ``interval`` seconds, and not at all while nothing happens.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from labkit.plots.style import FIGSIZE
from labkit.ui._common import Throttle

if TYPE_CHECKING:
    import pandas as pd

    from labkit.events import Event
    from labkit.runtime import Lab

__all__ = ["LivePlot"]


class LivePlot:
    """A plot of the lab's events, redrawn in place (see the module docstring).

    Parameters
    ----------
    lab:
        A running :class:`~labkit.runtime.Lab`.
    plot_fn:
        ``fn(data, *, ax, **kwargs)`` drawing into ``ax``.
    interval:
        Minimum seconds between two redraws (default 0.5: at most twice a second).
    kinds:
        Redraw only after events of these kinds (default: any event).
    data:
        ``fn(lab) -> DataFrame`` giving the plot's data (default: ``lab.events()``).
    options:
        ``fn() -> dict`` of more keyword arguments for ``plot_fn``, asked at every draw (e.g.
        the thresholds of the policy currently set in an update panel).
    figsize, dpi:
        Size of the picture (inches, dots per inch).
    **kwargs:
        Passed on to ``plot_fn`` (``device=``, ``by=`` ...).

    Attributes
    ----------
    widget:
        The ``ipywidgets.Image`` showing the picture.
    draws:
        How many pictures were drawn.
    error:
        The last drawing error (text), or ``None``.
    """

    def __init__(
        self,
        lab: Lab,
        plot_fn: Callable[..., Any],
        *,
        interval: float = 0.5,
        kinds: Iterable[str] | None = None,
        data: Callable[[Lab], pd.DataFrame] | None = None,
        options: Callable[[], dict[str, Any]] | None = None,
        figsize: tuple[float, float] = FIGSIZE,
        dpi: int = 80,
        **kwargs: Any,
    ) -> None:
        import ipywidgets as w

        self.lab = lab
        self.plot_fn = plot_fn
        self.kwargs = kwargs
        self.kinds = None if kinds is None else frozenset(kinds)
        self._data = data
        self._options = options
        self.figsize = figsize
        self.dpi = dpi
        self.draws = 0
        self.error: str | None = None
        width = int(figsize[0] * dpi)
        self.widget = w.Image(format="png", layout=w.Layout(max_width=f"{width}px"))
        self._throttle = Throttle(self._draw, interval, name="labkit-ui-live-plot")
        self._unsubscribe: Any = lab.subscribe(self._on_event)
        self._throttle.poke()  # the first picture, off this thread

    @property
    def interval(self) -> float:
        return self._throttle.interval

    def _on_event(self, event: Event) -> None:
        if self.kinds is None or event.kind in self.kinds:
            self._throttle.poke()

    def _draw(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        frame = self._data(self.lab) if self._data is not None else self.lab.events()
        fig = Figure(figsize=self.figsize, dpi=self.dpi, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        try:
            extra = self._options() if self._options is not None else {}
            self.plot_fn(frame, ax=ax, **{**self.kwargs, **extra})
        except Exception as exc:  # show the problem in place of the picture
            self.error = f"{type(exc).__name__}: {exc}"
            ax.clear()
            ax.text(
                0.5, 0.5, self.error, ha="center", va="center", wrap=True, transform=ax.transAxes
            )
            ax.set_axis_off()
        else:
            self.error = None
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        self.widget.value = buffer.getvalue()
        self.draws += 1

    def poke(self) -> None:
        """Redraw soon (within ``interval``), as if an event had arrived."""
        self._throttle.poke()

    def refresh(self) -> None:
        """Redraw now (in the calling thread)."""
        self._throttle.flush()

    def stop(self) -> None:
        """Stop following the lab (the last picture stays)."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        self._throttle.close()

    def close(self) -> None:
        """Stop and close the widget."""
        self.stop()
        self.widget.close()

    @property
    def png(self) -> bytes:
        """The picture shown now (PNG bytes; empty before the first draw)."""
        return bytes(self.widget.value)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"<LivePlot {getattr(self.plot_fn, '__name__', self.plot_fn)} draws={self.draws}>"
