"""The course's pytest plugin: modes, fixtures, "not started", and the summary of measured claims.

Modes (see README.md): learner (default), --solutions, --impl FILE; plus --seed N, --plots DIR,
--corpus FILE. --mutants FILE and --course-report FILE are for the suite's own meta-tests and
for `python -m minimind progress`.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, settings

from minimind import course
from minimind.course import (
    NOT_STARTED, Implementation, Lesson, NotStarted, Outcome, progress_lines,
)
from minimind.data import set_default_corpus

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files, never shown

# Property tests: reproducible (derandomized), no wall-clock deadline on a noisy shared CPU, and
# the `impl` fixture is a pure lookup, so reusing it across examples is safe.
settings.register_profile(
    "course", derandomize=True, deadline=None, database=None, max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("course")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("minimind lessons")
    group.addoption("--solutions", action="store_true",
                    help="run exercise tests against the reference implementation in minimind/")
    group.addoption("--impl", metavar="FILE", default=None,
                    help="run exercise tests against the functions this Python file defines")
    group.addoption("--seed", type=int, default=0, help="seed for every claim's experiment")
    group.addoption("--plots", metavar="DIR", default=None,
                    help="write each experiment's figure (PNG) into DIR")
    group.addoption("--corpus", metavar="FILE", default=None,
                    help="train on this UTF-8 text file instead of the built-in Shakespeare")
    group.addoption("--mutants", metavar="FILE", default=None,
                    help="(meta-tests) run exercise tests against the wrong versions in FILE")
    group.addoption("--course-report", metavar="FILE", default=None,
                    help="write every test's outcome as JSON to FILE")


@dataclass
class CourseState:
    mode: str
    impl_file: Path | None
    mutants: list[course.Mutant] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    tables: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    figures: dict[str, list[Path]] = field(default_factory=lambda: defaultdict(list))
    lessons: dict[str, Lesson] = field(default_factory=dict)
    implementations: dict[tuple[str, str | None], Implementation] = field(default_factory=dict)


def _state(config: pytest.Config) -> CourseState:
    return config.stash[_STATE]


_STATE = pytest.StashKey[CourseState]()
_CONFIG: list[pytest.Config | None] = [None]  # some hooks are not handed the config


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _CONFIG[0] = config
    # Benchmarks run once, as plain tests, unless asked for (--benchmark-only or -enable).
    if not (config.getoption("benchmark_only", False)
            or config.getoption("benchmark_enable", False)):
        config.option.benchmark_disable = True
    impl = config.getoption("--impl")
    mutants_file = config.getoption("--mutants")
    if config.getoption("--solutions") and impl:
        raise pytest.UsageError("--solutions and --impl are alternatives; give one")
    mode = "solutions" if config.getoption("--solutions") else "impl" if impl else "learner"
    impl_path = Path(impl).resolve() if impl else None
    if impl_path is not None and not impl_path.is_file():
        raise pytest.UsageError(f"--impl: no such file {impl}")
    state = CourseState(mode, impl_path)
    if mutants_file:
        path = Path(mutants_file).resolve()
        if not path.is_file():
            raise pytest.UsageError(f"--mutants: no such file {mutants_file}")
        state.mutants = course.mutants_in(course.import_file(path, f"_mutants_{path.stem}"))
    config.stash[_STATE] = state
    set_default_corpus(config.getoption("--corpus"))


def _lesson_for(config: pytest.Config, path: Path) -> Lesson | None:
    lesson = course.lesson_of(path)
    if lesson is not None:
        _state(config).lessons.setdefault(lesson.name, lesson)
    return lesson


def _exercise_names(item: pytest.Item) -> list[str]:
    return [name for m in item.iter_markers("exercise") for name in m.args]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    state = _state(metafunc.config)
    if not state.mutants or "mutant" not in metafunc.fixturenames:
        return
    names = [n for m in metafunc.definition.iter_markers("exercise") for n in m.args]
    chosen = [m for m in state.mutants if m.exercise in names]
    if chosen:
        metafunc.parametrize("mutant", chosen, ids=[m.id for m in chosen], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = _state(config)
    kept, dropped = [], []
    for item in items:
        lesson = _lesson_for(config, item.path)
        kinds = [k for k in ("claim", "exercise", "benchmark") if item.get_closest_marker(k)]
        if lesson is not None and not kinds:
            raise pytest.UsageError(
                f"{item.nodeid}: every lesson test is marked claim, exercise or benchmark"
            )
        names = _exercise_names(item)
        for name in names:
            if lesson is not None and name not in {s.name for s in lesson.exercises}:
                raise pytest.UsageError(
                    f"{item.nodeid}: exercise({name!r}) is not a function in "
                    f"{lesson.exercises_file}"
                )
        mutant = getattr(getattr(item, "callspec", None), "params", {}).get("mutant")
        if state.mutants and mutant is None:
            dropped.append(item)  # a mutant run runs only the tests that face a mutant
            continue
        kept.append(item)
        kind = "exercise" if "exercise" in kinds else kinds[0] if kinds else "other"
        state.outcomes[item.nodeid] = Outcome(
            item.nodeid, lesson.name if lesson else None, kind, names,
            mutant.id if mutant is not None else None,
        )
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Tests left out by -m / -k / a mutant run are not part of this run's outcomes."""
    if _CONFIG[0] is None:
        return
    outcomes = _state(_CONFIG[0]).outcomes
    for item in items:
        outcomes.pop(item.nodeid, None)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    try:
        return (yield)
    except NotStarted as err:
        pytest.skip(str(err))


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    if report.skipped and NOT_STARTED in _skip_reason(report):
        return "not started", "n", ("NOT STARTED", {"yellow": True})
    return None


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _CONFIG[0]
    if config is None:
        return
    outcome = _state(config).outcomes.get(report.nodeid)
    if outcome is None:
        return
    if report.when == "call" or report.outcome != "passed":
        if report.skipped:
            reason = _skip_reason(report)
            outcome.outcome = NOT_STARTED if NOT_STARTED in reason else "skipped"
            outcome.message = reason
        elif report.failed:
            outcome.outcome = "failed" if report.when == "call" else "error"
            outcome.message = str(report.longrepr)[-2000:]
        else:
            outcome.outcome = "passed"


# --- fixtures ------------------------------------------------------------------------------------

@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The seed every claim's experiment uses (--seed N, default 0)."""
    return request.config.getoption("--seed")


@pytest.fixture
def mutant(request: pytest.FixtureRequest) -> course.Mutant | None:
    return getattr(request, "param", None)


@pytest.fixture
def impl(request: pytest.FixtureRequest, mutant: course.Mutant | None) -> Implementation:
    """The exercise functions under test: learner's, reference, --impl module, or a mutant."""
    config = request.config
    state = _state(config)
    lesson = _lesson_for(config, request.path)
    if lesson is None:
        raise pytest.UsageError(f"{request.node.nodeid}: `impl` is only for tests in lessons/")
    if mutant is not None:
        reference = course.resolve(lesson, "solutions")
        reference.overrides = {mutant.exercise: mutant.fn}
        return reference
    key = (lesson.name, state.mode)
    if key not in state.implementations:
        state.implementations[key] = course.resolve(lesson, state.mode, state.impl_file)
    return state.implementations[key]


class Recorder:
    """What a claim measured: tables for the terminal summary, figures for --plots."""

    def __init__(self, state: CourseState, nodeid: str, plots: Path | None, seed: int):
        self.state, self.nodeid, self.plots, self.seed = state, nodeid, plots, seed

    def table(self, table: Any) -> None:
        self.state.tables[self.nodeid].append(table)

    def figure(self, name: str, draw: Callable[[Path], Any]) -> Path | None:
        """Call draw(path) to write `name`.png when --plots DIR is given."""
        if self.plots is None:
            return None
        path = self.plots / f"{name}-seed{self.seed}.png"
        draw(path)
        self.state.figures[self.nodeid].append(path)
        return path


@pytest.fixture
def report(request: pytest.FixtureRequest, seed: int) -> Recorder:
    """Record measured tables (printed in the summary) and figures (written with --plots)."""
    plots = request.config.getoption("--plots")
    return Recorder(_state(request.config), request.node.nodeid,
                    Path(plots).resolve() if plots else None, seed)


# --- the summary ---------------------------------------------------------------------------------

def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = _state(config)
    by_lesson: dict[str, list[Outcome]] = defaultdict(list)
    for o in state.outcomes.values():
        if o.lesson:
            by_lesson[o.lesson].append(o)
    if not by_lesson or state.mutants:
        return
    tr = terminalreporter
    tr.section(f"minimind lessons ({state.mode} mode, seed {config.getoption('--seed')})")
    for name in sorted(by_lesson):
        outcomes = by_lesson[name]
        tr.write_line(f"{name}")
        claims = [o for o in outcomes if o.kind == "claim" and o.outcome != "not run"]
        if claims:
            held = sum(o.outcome == "passed" for o in claims)
            tr.write_line(f"  claims: {held}/{len(claims)} hold")
        for o in claims:
            test_name = o.nodeid.split("::", 1)[-1]
            tr.write_line(f"  [{o.outcome.upper()}] {test_name}")
            for table in state.tables.get(o.nodeid, []):
                for line in table.render().splitlines():
                    tr.write_line(f"      {line}")
            for path in state.figures.get(o.nodeid, []):
                tr.write_line(f"      figure: {path}")
        for line in progress_lines(state.lessons[name], outcomes):
            tr.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--course-report")
    if not path:
        return
    state = _state(session.config)
    data = {
        "mode": state.mode,
        "outcomes": [vars(o) for o in state.outcomes.values()],
    }
    Path(path).write_text(json.dumps(data, indent=1), encoding="utf-8")
