"""Calibrate claims: run them over many seeds, with and without the perturbation, and report for
every check of every claim the measured value closest to its threshold and the margin left.

    python -m minimind.course.calibrate lessons/01_normalization          # seeds 0..19, both modes
    python -m minimind.course.calibrate lessons/01_normalization --write  # ... and the README

--write puts the margin table into the lesson's README (between the markers
<!-- calibration:begin --> and <!-- calibration:end -->) and redraws the lesson's figures from
the seed-0 run into its figures/ folder. Runs go in parallel, one single-threaded pytest each.
Every run's outcomes are kept in .calibration/ (one JSON per seed and mode); --resume reuses
them, so a calibration that was stopped picks up where it was (only for unchanged code).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

BEGIN, END = "<!-- calibration:begin -->", "<!-- calibration:end -->"


@dataclass
class Measured:
    """One check of one claim over every run: values and margins per mode."""

    nodeid: str
    claim: str
    label: str
    op: str
    threshold: float
    values: dict[bool, list[float]] = field(default_factory=lambda: defaultdict(list))
    margins: dict[bool, list[float]] = field(default_factory=lambda: defaultdict(list))

    def closest(self) -> tuple[float, float]:
        """(value, margin) of the run that came closest to failing, over both modes."""
        pairs = [(m, v) for p in self.margins for m, v in zip(self.margins[p], self.values[p])]
        margin, value = min(pairs)
        return value, margin


def kept_path(runs: Path, paths: list[str], seed: int, perturb: bool) -> Path:
    """Where one run's outcomes are kept: .calibration/<paths>/seed-<N>-<mode>.json"""
    what = "+".join(p.strip("/").replace("/", "-") for p in paths) or "all"
    return runs / what / f"seed-{seed}-{'perturbed' if perturb else 'plain'}.json"


def run_one(paths: list[str], seed: int, perturb: bool, root: Path,
            plots: Path | None, keep: Path, resume: bool) -> dict:
    if resume and plots is None and keep.is_file():
        return json.loads(keep.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "outcomes.json"
        # The figure run also runs the benchmarks, whose figures live in the same folders.
        marker = "claim" if plots is None else "claim or benchmark"
        cmd = [sys.executable, "-m", "pytest", *paths, "-m", marker, "--solutions", "-q",
               "-p", "no:cacheprovider", "--seed", str(seed), "--outcomes-json", str(out)]
        if perturb:
            cmd.append("--perturb")
        if plots is not None:
            cmd += ["--plots", str(plots)]
        env = os.environ | {"MINIMIND_WORKERS": "1", "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env,
                              check=False)
        if not out.exists():
            raise RuntimeError(f"seed {seed}: pytest wrote no outcomes\n{proc.stdout[-2000:]}")
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, keep)
        return json.loads(out.read_text(encoding="utf-8"))


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi or lo) + 1))
    return seeds


def failures_of(seed: int, perturb: bool, data: dict) -> list[str]:
    return [f"seed {seed}{' perturbed' if perturb else ''}: {o['nodeid']} {o['status']}"
            for o in data["outcomes"] if o["status"] not in ("passed", "skipped")]


def collect(results: list[tuple[int, bool, dict]]) -> tuple[dict, list[str]]:
    measured: dict[tuple[str, str], Measured] = {}
    failures = []
    for seed, perturb, data in results:
        failures += failures_of(seed, perturb, data)
        for nodeid, record in data["claims"].items():
            name = nodeid.split("::", 1)[-1]
            for c in record["checks"]:
                key = (name, c["label"], c["op"])  # a two-sided bound is two checks
                m = measured.setdefault(key, Measured(nodeid, name, c["label"], c["op"],
                                                      c["threshold"]))
                m.values[perturb].append(c["value"])
                m.margins[perturb].append(c["margin"])
    return measured, failures


def fmt(x: float) -> str:
    if math.isinf(x) or math.isnan(x):
        return str(x)
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def margin_table(measured: dict, seeds: list[int], modes: list[bool]) -> str:
    runs = f"seeds {seeds[0]}..{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) \
        else f"seeds {seeds}"
    mode_text = " and ".join("perturbed" if p else "plain" for p in modes)
    lines = [f"Measured over {runs}, {mode_text} ({len(seeds) * len(modes)} runs per check).",
             "", "| claim | check | threshold | range measured | closest | margin |",
             "|---|---|---|---|---|---|"]
    for m in measured.values():
        every = [v for p in m.values for v in m.values[p]]
        value, margin = m.closest()
        claim = m.claim.removeprefix("test_").replace("_", " ")
        label = m.label.replace("|", "\\|")  # a bar would end the Markdown cell
        lines.append(f"| {claim} | {label} | {m.op} {fmt(m.threshold)} | "
                     f"{fmt(min(every))} .. {fmt(max(every))} | {fmt(value)} | {margin:+.0%} |")
    return "\n".join(lines)


def write_readme(readme: Path, table: str) -> None:
    text = readme.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Claims, measured\n\n" + block + "\n"
    readme.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minimind.course.calibrate",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", default=["lessons"],
                        help="lesson folders or test files (default: every lesson)")
    parser.add_argument("--seeds", default="0-19", help="seeds, e.g. 0-19 or 0,3,7 (default 0-19)")
    parser.add_argument("--modes", choices=["both", "plain", "perturbed"], default="both",
                        help="with the perturbation, without, or both (default)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="pytest runs at once, one thread each (default: one per core)")
    parser.add_argument("--write", action="store_true",
                        help="write each lesson's margin table into its README and redraw its "
                             "figures from the plain seed-0 run")
    parser.add_argument("--runs", default=".calibration",
                        help="folder keeping every run's outcomes (default .calibration)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the runs kept in --runs instead of running them again "
                             "(only valid while the code they ran is unchanged)")
    args = parser.parse_args(argv)
    root = Path.cwd()
    seeds = parse_seeds(args.seeds)
    modes = {"both": [False, True], "plain": [False], "perturbed": [True]}[args.modes]
    plots = Path(tempfile.mkdtemp()) if args.write else None
    jobs = [(s, p) for p in modes for s in seeds]
    print(f"{len(jobs)} runs of {' '.join(args.paths)} ({args.jobs} at a time)", flush=True)
    results = []
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_one, args.paths, s, p, root,
                               plots if (s == seeds[0] and not p) else None,
                               kept_path(root / args.runs, args.paths, s, p), args.resume): (s, p)
                   for s, p in jobs}
        for done, (future, (s, p)) in enumerate(futures.items(), 1):
            results.append((s, p, future.result()))
            failed = failures_of(s, p, results[-1][2])  # shown now, not only at the end
            print(f"  [{done}/{len(jobs)}] seed {s}{' perturbed' if p else ''}"
                  + "".join(f"\n      FAILED {f}" for f in failed), flush=True)
    measured, failures = collect(results)
    by_lesson: dict[str, dict] = defaultdict(dict)
    for key, m in measured.items():
        parts = m.nodeid.split("/")
        by_lesson[parts[1] if parts[0] == "lessons" else "other"][key] = m
    for lesson, rows in sorted(by_lesson.items()):
        table = margin_table(rows, seeds, modes)
        print(f"\n{lesson}\n{table}")
        if args.write and lesson != "other":
            write_readme(root / "lessons" / lesson / "README.md", table)
            # Translations (README.zh.md, ...) carry the same generated table, never a typed one.
            for translation in sorted((root / "lessons" / lesson).glob("README.*.md")):
                if BEGIN in translation.read_text(encoding="utf-8"):
                    write_readme(translation, table)
            figures = root / "lessons" / lesson / "figures"
            drawn = sorted((plots / lesson).glob("*.png")) if plots else []
            if drawn:
                shutil.rmtree(figures, ignore_errors=True)
                figures.mkdir(parents=True)
                for png in drawn:
                    shutil.copy(png, figures / png.name)
    if plots is not None:
        shutil.rmtree(plots, ignore_errors=True)
    if failures:
        print("\nfailed:\n  " + "\n  ".join(failures))
        return 1
    print(f"\nevery claim held in all {len(jobs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
