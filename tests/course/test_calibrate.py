"""The calibration command's arithmetic: seeds, the closest run, the README block, kept runs."""
from __future__ import annotations

import json
from pathlib import Path

from minimind.course.calibrate import (
    BEGIN,
    END,
    collect,
    kept_path,
    margin_table,
    parse_seeds,
    run_one,
    write_readme,
)


def _run(values: list[tuple[str, float]], failed: bool = False) -> dict:
    checks = [{"label": label, "value": v, "op": "<", "threshold": 1.0, "margin": 1.0 - v}
              for label, v in values]
    nodeid = "lessons/99_x/test_claims.py::test_a_claim"
    return {"outcomes": [{"nodeid": nodeid, "status": "failed" if failed else "passed"}],
            "claims": {nodeid: {"checks": checks}}}


def test_seed_ranges_and_lists_parse_to_every_seed_once():
    """'0-3,7' names seeds 0, 1, 2, 3 and 7, in order."""
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds("5") == [5]


def test_margin_table_reports_the_run_closest_to_failing_over_both_modes():
    """The closest value is the smallest margin over every seed and mode, with its range."""
    results = [(0, False, _run([("loss", 0.5)])), (1, False, _run([("loss", 0.2)])),
               (0, True, _run([("loss", 0.9)], failed=True))]
    measured, failures = collect(results)
    assert failures == ["seed 0 perturbed: lessons/99_x/test_claims.py::test_a_claim failed"]
    (m,) = measured.values()
    assert m.closest() == (0.9, 0.09999999999999998)
    table = margin_table(measured, [0, 1], [False, True])
    assert "seeds 0..1, plain and perturbed (4 runs per check)" in table
    assert "| a claim | loss | < 1 | 0.2 .. 0.9 | 0.9 | +10% |" in table


def test_write_readme_replaces_only_the_block_between_the_markers(tmp_path: Path):
    """Text around the markers is kept; the old table is gone."""
    readme = tmp_path / "README.md"
    readme.write_text(f"# Lesson\n\nbefore\n{BEGIN}\nold table\n{END}\nafter\n")
    write_readme(readme, "new table")
    assert readme.read_text() == f"# Lesson\n\nbefore\n{BEGIN}\nnew table\n{END}\nafter\n"


def test_resume_reuses_a_kept_run_without_running_pytest(tmp_path: Path):
    """With --resume a kept run is read back; the lesson path need not even exist."""
    keep = kept_path(tmp_path, ["lessons/99_missing"], seed=3, perturb=True)
    assert keep == tmp_path / "lessons-99_missing" / "seed-3-perturbed.json"
    keep.parent.mkdir(parents=True)
    keep.write_text(json.dumps(_run([("loss", 0.5)])))
    data = run_one(["lessons/99_missing"], 3, True, tmp_path, None, keep, resume=True)
    assert data == _run([("loss", 0.5)])
