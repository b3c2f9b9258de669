"""What a claim measured: the checks it asserts (each a value against a threshold, with the
margin left), its tables for pytest's summary, and its figures for `--plots DIR`.

    claim.check("Post-LN final loss above the plateau", post, ">", PLATEAU - 0.1)

Stating every assertion of a claim as a measured value against a threshold is what lets the
calibration command (`python -m minimind.course.calibrate`) report, over many seeds, how close
each claim came to failing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minimind.lab.figures import Figure
from minimind.lab.tables import Table

OPERATORS = ("<", ">")


class ClaimFailed(AssertionError):
    """A measured value fell on the wrong side of its claim's threshold."""


@dataclass(frozen=True)
class Check:
    label: str  # what was measured, as the README's margin table names it
    value: float
    op: str  # "<" or ">": the side of the threshold the claim promises
    threshold: float

    @property
    def holds(self) -> bool:
        return self.value < self.threshold if self.op == "<" else self.value > self.threshold

    @property
    def margin(self) -> float:
        """Room left, as a fraction of the threshold (of 1 when the threshold is 0); < 0 fails."""
        room = self.threshold - self.value if self.op == "<" else self.value - self.threshold
        scale = abs(self.threshold) or 1.0
        return room / scale if math.isfinite(room) else (math.inf if room > 0 else -math.inf)

    def describe(self) -> str:
        return (f"{self.label}: measured {self.value:.4g}, the claim needs {self.op} "
                f"{self.threshold:.4g} (margin {self.margin:+.1%})")


@dataclass
class ClaimRecord:
    """The `claim` fixture: one per claim test."""

    nodeid: str
    lesson: str | None
    seed: int
    plots: Path | None  # --plots DIR, or None: figures are then described but never drawn
    checks: list[Check] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def check(self, label: str, value: float, op: str, threshold: float) -> None:
        """Record value against threshold and fail the claim when it is on the wrong side."""
        __tracebackhide__ = True
        if op not in OPERATORS:
            raise ValueError(f"op must be one of {OPERATORS}, got {op!r}")
        check = Check(label, float(value), op, float(threshold))
        self.checks.append(check)
        if not check.holds:
            raise ClaimFailed(check.describe())

    def table(self, table: Table) -> None:
        self.tables.append(table)

    def figure(self, name: str, figure: Figure) -> Path | None:
        """Draw `figure` as DIR/<lesson>/<name>.png when --plots DIR is given."""
        if self.plots is None:
            return None
        path = self.plots / (self.lesson or "other") / f"{name}.png"
        figure.draw(path)
        self.figures.append(path)
        return path

    def to_json(self) -> dict[str, Any]:
        return {
            "checks": [vars(c) | {"margin": c.margin, "holds": c.holds} for c in self.checks],
            "tables": [t.markdown() for t in self.tables],
            "figures": [str(p) for p in self.figures],
        }
