"""Exercise progress: per lesson, which exercises are done, failing, not started, and where the
learner writes next. Printed in pytest's summary and by `minimind progress`."""
from __future__ import annotations

import contextlib
import enum
import io
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from minimind.course.lessons import Lesson


class Status(str, enum.Enum):
    """The outcome of one test as the course reports it."""

    NOT_RUN = "not run"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    NOT_STARTED = "not started"
    DOES_NOT_IMPORT = "does not import"
    SKIPPED = "skipped"


class Kind(str, enum.Enum):
    CLAIM = "claim"
    EXERCISE = "exercise"
    BENCHMARK = "benchmark"
    OTHER = "other"


@dataclass
class Outcome:
    nodeid: str
    lesson: str | None
    kind: Kind
    exercises: list[str]
    mistake: str | None  # id of the catalogued wrong version the test faced (meta-tests)
    status: Status = Status.NOT_RUN
    message: str = ""


def exercise_status(name: str, outcomes: list[Outcome]) -> Status:
    seen = {o.status for o in outcomes if name in o.exercises and o.mistake is None}
    for status in (Status.DOES_NOT_IMPORT, Status.FAILED, Status.ERROR, Status.NOT_STARTED):
        if status in seen:
            return Status.FAILED if status is Status.ERROR else status
    return Status.PASSED if Status.PASSED in seen else Status.NOT_RUN


def progress_lines(lesson: Lesson, outcomes: list[Outcome],
                   where: dict[str, str]) -> list[str]:
    """The lesson's progress block; `where` gives file:line of each exercise for this run."""
    rows = [(name, exercise_status(name, outcomes)) for name in lesson.exercises]
    if all(status is Status.NOT_RUN for _, status in rows):
        return []
    done = sum(status is Status.PASSED for _, status in rows)
    lines = [f"  exercises: {done}/{len(rows)} done"]
    width = max(len(name) for name, _ in rows)
    label = {Status.PASSED: "done", Status.FAILED: "failing"}
    for name, status in rows:
        lines.append(f"    {name.ljust(width)}  {label.get(status, status.value):<15} "
                     f"{where[name]}")
    upcoming = next((name for name, status in rows if status is not Status.PASSED), None)
    if upcoming:
        lines.append(f"  next: {upcoming} at {where[upcoming]}")
    return lines


def course_root(start: Path | None = None) -> Path:
    """The checkout to report on: the nearest folder at or above `start` (default: the working
    directory) that holds lessons/, else the checkout this package was installed from."""
    from minimind.course.lessons import PACKAGE_ROOT

    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / "lessons").is_dir():
            return folder
    return PACKAGE_ROOT


def run_progress(root: Path, impl: str | None = None) -> int:
    """`minimind progress`: run only the exercise tests and print the summary's progress part."""
    tests = sorted(str(p.relative_to(root)) for p in (root / "lessons").glob("*/test_exercises.py"))
    if not tests:
        print(f"error: no lessons under {root / 'lessons'}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "outcomes.json"
        # -p and the import mode also where no conftest.py / pyproject.toml says so (a copy)
        args = [*tests, "-m", "exercise", "-q", "-p", "minimind.course.plugin",
                "--import-mode=importlib", "-p", "no:cacheprovider", "--outcomes-json", str(report)]
        if impl:
            args += ["--impl", str(Path(impl).resolve())]
        # In this process: the exercise tests take a fraction of a second, a second Python
        # with torch several.
        output = io.StringIO()
        with contextlib.chdir(root), contextlib.redirect_stdout(output):
            pytest.main(args)
        if not report.exists():
            print(output.getvalue()[-3000:])
            print("error: the exercise tests did not run; the output above says why",
                  file=sys.stderr)
            return 2
        data = json.loads(report.read_text(encoding="utf-8"))
    for block in data["progress"]:
        print(block["lesson"])
        for line in block["lines"]:
            print(line)
    print(f"\n{data['done']}/{data['total']} exercises done")
    return 0
