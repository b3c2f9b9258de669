"""Fixtures for the course's meta-tests: copies of lessons in a pytester folder, with the shipped
stubs or a learner's version, run through the course plugin in this process."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch._dynamo  # noqa: F401

from minimind.course.lessons import PACKAGE_ROOT, pristine_stub

# pytester's in-process runs drop every module a run imported. torch imports torch._dynamo
# lazily (torch.manual_seed can), and a second import of it re-registers operator libraries and
# fails; importing it once here, before any run, keeps it loaded across runs.

LESSONS = PACKAGE_ROOT / "lessons"


@pytest.fixture
def lessons_dir() -> Path:
    """The checkout's lessons/ folder (read only: meta-tests work on copies)."""
    return LESSONS


@pytest.fixture
def copy_lesson(pytester: pytest.Pytester) -> Callable[..., Path]:
    """copy_lesson(name, exercises=None): lessons/<name> copied into the pytester folder, its
    exercises.py the shipped stub or the given text."""

    def copy(name: str, exercises: str | None = None) -> Path:
        dst = pytester.path / "lessons" / name
        shutil.copytree(LESSONS / name, dst,
                        ignore=shutil.ignore_patterns("figures", "__pycache__", "README.md"))
        text = pristine_stub(LESSONS / name) if exercises is None else exercises
        (dst / "exercises.py").write_text(text, encoding="utf-8")
        return dst

    return copy


@pytest.fixture
def run_course(pytester: pytest.Pytester) -> Callable[..., pytest.RunResult]:
    """run_course(*args): pytest with the course plugin, in this process, in the copy."""

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_inprocess(
            "-p", "minimind.course.plugin", "--import-mode=importlib", "-p", "no:cacheprovider",
            *args)

    return run


def statuses(result: pytest.RunResult) -> dict[str, str]:
    """nodeid -> outcome word of every test the run reported."""
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    return {r.nodeid: r.outcome for r in reports if r.when == "call" or r.outcome != "passed"}


@pytest.fixture
def outcomes_of() -> Callable[[pytest.RunResult], dict[str, str]]:
    """outcomes_of(result): nodeid -> passed / failed / skipped for a run_course result."""
    return statuses
