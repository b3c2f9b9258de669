"""Tables of measured numbers: rendered in pytest's summary and as Markdown in lesson READMEs."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Table:
    """A small table of measured numbers, printed in pytest's summary and pasted in READMEs."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[Any]]
    note: str = ""

    @staticmethod
    def _fmt(value: Any) -> str:
        if isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                return str(value)
            if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
                return f"{value:.2e}"
            return f"{value:.4g}" if abs(value) >= 100 else f"{value:.3f}"
        return "-" if value is None else str(value)

    def render(self) -> str:
        cells = [list(map(str, self.columns))] + [[self._fmt(v) for v in r] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [self.title]
        for k, row in enumerate(cells):
            lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths)))
            if k == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)

    def markdown(self) -> str:
        head = "| " + " | ".join(map(str, self.columns)) + " |"
        rule = "|" + "|".join("---" for _ in self.columns) + "|"
        body = ["| " + " | ".join(self._fmt(v) for v in r) + " |" for r in self.rows]
        return "\n".join([f"**{self.title}**", "", head, rule, *body])


