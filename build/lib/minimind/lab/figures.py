"""Figures as data: a claim builds a figure description and hands it over; drawing happens
only when figures are asked for (`pytest --plots DIR`), so claims hold no plotting code.

    claim.figure("activation-scale", LineFigure(series, xlabel="layer", ylabel="std", ...))

Each description draws itself on a matplotlib Axes (`plot(ax)`); `Panels` puts several side by
side, and `draw(path)` writes any of them as one PNG.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class Figure(Protocol):
    def plot(self, ax: Any) -> None: ...

    def draw(self, path: Path) -> Path: ...


def pyplot() -> Any:
    """matplotlib.pyplot with the headless backend, imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


class _Drawable:
    size: tuple[float, float] = (6, 4)

    def plot(self, ax: Any) -> None:
        raise NotImplementedError

    def draw(self, path: Path) -> Path:
        fig, ax = pyplot().subplots(figsize=self.size)
        self.plot(ax)
        return save_figure(fig, path)


Series = dict[str, tuple[Sequence[Any], Sequence[float]]]  # label -> (xs, ys)


@dataclass
class LineFigure(_Drawable):
    """Labelled (xs, ys) curves. xs may be numbers or category labels."""

    series: Series
    xlabel: str
    ylabel: str
    title: str
    logx: bool = False
    logy: bool = False
    logx_base: int = 2  # depths, widths and lengths double
    hline: tuple[float, str] | None = None  # (y, label) of a dotted reference line
    vline: tuple[float, str] | None = None  # (x, label) of a dashed reference line
    markers: bool = True
    linewidth: float = 1.5

    def plot(self, ax: Any) -> None:
        for label, (xs, ys) in self.series.items():
            ax.plot(list(xs), list(ys), "o-" if self.markers else "-", label=label,
                    lw=self.linewidth)
        if self.hline is not None:
            ax.axhline(self.hline[0], ls=":", c="gray", label=self.hline[1])
        if self.vline is not None:
            ax.axvline(self.vline[0], ls="--", c="gray", lw=0.7, label=self.vline[1])
        if self.logx:
            ax.set_xscale("log", base=self.logx_base)
        if self.logy:
            ax.set_yscale("log")
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        ax.set_title(self.title)
        ax.legend(fontsize=7)


def loss_curves(runs: dict[str, Any], title: str, log: bool = False) -> LineFigure:
    """Training-loss curves of runs that share a seed (values of lab.Comparison.runs)."""
    series = {name: (range(len(r.losses)), r.losses) for name, r in runs.items()}
    return LineFigure(series, xlabel="step", ylabel="training loss", title=title, logy=log,
                      markers=False)


@dataclass
class BarFigure(_Drawable):
    """Bars per category, one colour per series (grouped side by side)."""

    categories: Sequence[str]
    series: dict[str, Sequence[float]]  # label -> one value per category
    ylabel: str
    title: str
    hline: tuple[float, str] | None = None
    logy: bool = False

    def plot(self, ax: Any) -> None:
        n = len(self.series)
        width = 0.8 / max(n, 1)
        for j, (label, values) in enumerate(self.series.items()):
            xs = [i + (j - (n - 1) / 2) * width for i in range(len(self.categories))]
            ax.bar(xs, list(values), width, label=label)
        if self.hline is not None:
            ax.axhline(self.hline[0], ls=":", c="gray", label=self.hline[1])
        ax.set_xticks(range(len(self.categories)), list(self.categories))
        ax.tick_params(axis="x", labelsize=8)
        if self.logy:
            ax.set_yscale("log")
        ax.set_ylabel(self.ylabel)
        ax.set_title(self.title)
        ax.legend(fontsize=7)


@dataclass
class HeatmapFigure(_Drawable):
    """A matrix drawn as an image with a colour bar (attention weights, similarity tables)."""

    matrix: Sequence[Sequence[float]]
    xlabel: str
    ylabel: str
    title: str
    cmap: str = "viridis"
    size: tuple[float, float] = (5, 4)

    def plot(self, ax: Any) -> None:
        image = ax.imshow([list(row) for row in self.matrix], cmap=self.cmap, aspect="auto")
        ax.figure.colorbar(image, ax=ax)
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        ax.set_title(self.title)


@dataclass
class Panels:
    """Several figures side by side in one PNG."""

    panels: Sequence[Any]  # LineFigure, BarFigure or HeatmapFigure
    width_per_panel: float = 5.0
    height: float = 4.0

    def plot(self, ax: Any) -> None:
        raise TypeError("Panels are drawn as a whole figure: call draw(path)")

    def draw(self, path: Path) -> Path:
        n = len(self.panels)
        fig, axes = pyplot().subplots(1, n, figsize=(self.width_per_panel * n, self.height))
        for panel, ax in zip(self.panels, axes if n > 1 else [axes]):
            panel.plot(ax)
        return save_figure(fig, path)
