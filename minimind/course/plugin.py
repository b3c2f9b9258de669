"""The course's pytest plugin: modes, fixtures, "not started", short diagnoses, time limits, and
the summary of measured claims and exercise progress.

Registered by the root conftest.py (`pytest_plugins = ["minimind.course.plugin"]`). Options
(README.md): --solutions, --impl FILE, --seed N, --perturb, --plots DIR, --corpus FILE; for the
suite's own meta-tests and tools: --mistakes (every exercise test against every catalogued wrong
version) and --outcomes-json FILE (every test's outcome, claim checks and progress, as JSON).
All state lives on the CoursePlugin object registered for the run.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from minimind.course import diagnosis
from minimind.course.claims import ClaimFailed, ClaimRecord
from minimind.course.implementations import (
    CALLS,
    Implementation,
    InputModified,
    Mode,
    NotStarted,
    resolve,
)
from minimind.course.lessons import Lesson, SourceProblem, lesson_folder_of
from minimind.course.mistakes import Catalogue, Mistake, catalogue
from minimind.course.progress import Kind, Outcome, Status, exercise_status, progress_lines
from minimind.lab.training import PERTURB_ENV, threads

EXERCISE_TIME_LIMIT = 10.0  # seconds; an exercise test takes well under one
PERTURBATION = "1e-6"  # relative nudge of initial weights under --perturb (lab.nudge_weights)

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
    group.addoption("--perturb", action="store_true",
                    help="nudge every training run's initial weights by a relative 1e-6: a "
                         "stand-in for another CPU's last-bit differences")
    group.addoption("--plots", metavar="DIR", default=None,
                    help="write each experiment's figure as DIR/<lesson>/<name>.png")
    group.addoption("--corpus", metavar="FILE", default=None,
                    help="train on this UTF-8 text file instead of the built-in Shakespeare")
    group.addoption("--mistakes", action="store_true",
                    help="(meta-tests) run each exercise test against every known wrong version")
    group.addoption("--outcomes-json", metavar="FILE", default=None,
                    help="write every test's outcome, claim checks and progress to FILE")
    group.addoption("--exercise-timeout", type=float, default=EXERCISE_TIME_LIMIT,
                    metavar="SECONDS", help="time limit of one exercise test (default %(default)s)")


MARKERS = (
    "claim: a measured claim of a lesson, run on the reference implementation",
    "exercise(*names): tests the learner's implementation of the named exercise functions",
    "slow: takes more than a few seconds",
)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    config.pluginmanager.register(CoursePlugin(config), "minimind-course")


@pytest.fixture(scope="session")
def seed(request: pytest.FixtureRequest) -> int:
    """The seed every claim's experiment uses (--seed N, default 0)."""
    return request.config.getoption("--seed")


class CoursePlugin:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.root = config.invocation_params.dir  # paths in messages are shown relative to it
        impl = config.getoption("--impl")
        if config.getoption("--solutions") and impl:
            raise pytest.UsageError("--solutions and --impl are alternatives; give one")
        self.mode = Mode.SOLUTIONS if config.getoption("--solutions") else (
            Mode.IMPL if impl else Mode.LEARNER)
        self.impl_file = Path(impl).resolve() if impl else None
        if self.impl_file is not None and not self.impl_file.is_file():
            raise pytest.UsageError(f"--impl: no such file {impl}")
        self.with_mistakes = config.getoption("--mistakes")
        self.time_limit = config.getoption("--exercise-timeout")
        self.run_seed = config.getoption("--seed")
        self.perturb = config.getoption("--perturb")
        plots = config.getoption("--plots")
        self.plots = Path(plots).resolve() if plots else None
        self.outcomes: dict[str, Outcome] = {}
        self.records: dict[str, ClaimRecord] = {}
        self.lessons: dict[str, Lesson] = {}
        self.implementations: dict[str, Implementation] = {}
        # Benchmarks run once, as plain tests, unless asked for (--benchmark-only or -enable).
        if not (config.getoption("benchmark_only", False)
                or config.getoption("benchmark_enable", False)):
            config.option.benchmark_disable = True
        # Read by lab.fit, also in the processes it forks; the option decides, not a stale env.
        if self.perturb:
            os.environ[PERTURB_ENV] = PERTURBATION
        else:
            os.environ.pop(PERTURB_ENV, None)
        if config.getoption("--corpus"):
            from minimind.data import set_default_corpus

            set_default_corpus(config.getoption("--corpus"))

    # --- lessons and implementations ----------------------------------------------------------

    def lesson_of(self, path: Path) -> Lesson | None:
        folder = lesson_folder_of(path)
        if folder is None:
            return None
        if folder.name not in self.lessons:
            known = catalogue(folder.name)
            if known is None:
                raise pytest.UsageError(
                    f"{folder.name} has no catalogue of exercises and mistakes: add "
                    f"minimind/course/mistakes/{folder.name.split('_', 1)[-1]}.py")
            self.lessons[folder.name] = Lesson(folder, known.reference, known.exercises)
        return self.lessons[folder.name]

    def catalogue_of(self, lesson: Lesson) -> Catalogue:
        known = catalogue(lesson.name)
        assert known is not None  # lesson_of refuses lessons without one
        return known

    def implementation(self, lesson: Lesson) -> Implementation:
        if lesson.name not in self.implementations:
            self.implementations[lesson.name] = resolve(
                lesson, self.mode, self.impl_file, self.root, self.catalogue_of(lesson).mistakes)
        return self.implementations[lesson.name]

    # --- collection -----------------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if not self.with_mistakes or "mistake" not in metafunc.fixturenames:
            return
        lesson = self.lesson_of(metafunc.definition.path)
        known = catalogue(lesson.name) if lesson else None
        names = {n for m in metafunc.definition.iter_markers("exercise") for n in m.args}
        chosen = [m for m in known.mistakes if m.exercise in names] if known else []
        if chosen:
            metafunc.parametrize("mistake", chosen, ids=[m.id for m in chosen], indirect=True)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        kept, dropped = [], []
        for item in items:
            lesson = self.lesson_of(item.path)
            kinds = [k for k in Kind if k is not Kind.OTHER and item.get_closest_marker(k.value)]
            if lesson is not None and not kinds:
                raise pytest.UsageError(
                    f"{item.nodeid}: every lesson test is marked claim, exercise or benchmark")
            names = [n for m in item.iter_markers("exercise") for n in m.args]
            unknown = [n for n in names if lesson is None or n not in lesson.exercises]
            if unknown:
                raise pytest.UsageError(f"{item.nodeid}: exercise({unknown[0]!r}) is not an "
                                        "exercise of its lesson's catalogue")
            mistake = getattr(getattr(item, "callspec", None), "params", {}).get("mistake")
            if self.with_mistakes and mistake is None:
                dropped.append(item)  # a mistakes run runs only the tests that face a mistake
                continue
            if names and item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(self.time_limit))
            kept.append(item)
            kind = Kind.EXERCISE if names else (kinds[0] if kinds else Kind.OTHER)
            self.outcomes[item.nodeid] = Outcome(
                item.nodeid, lesson.name if lesson else None, kind, names,
                mistake.id if mistake is not None else None)
        if dropped:
            self.config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """Tests left out by -m / -k / a mistakes run are not part of this run's outcomes."""
        for item in items:
            self.outcomes.pop(item.nodeid, None)

    # --- fixtures -------------------------------------------------------------------------------

    @pytest.fixture
    def mistake(self, request: pytest.FixtureRequest) -> Mistake | None:
        """The catalogued wrong version this test faces in a --mistakes run, else None."""
        return getattr(request, "param", None)

    @pytest.fixture
    def impl(self, request: pytest.FixtureRequest, mistake: Mistake | None) -> Implementation:
        """The exercise functions under test: the learner's, the reference, an --impl module,
        or (meta-tests) the reference with one function replaced by a known wrong version."""
        lesson = self.lesson_of(request.path)
        if lesson is None:
            raise pytest.UsageError(f"{request.node.nodeid}: `impl` is only for lesson tests")
        if mistake is not None:
            reference = resolve(lesson, Mode.MISTAKE, root=self.root,
                                known=self.catalogue_of(lesson).mistakes)
            reference.overrides = {mistake.exercise: mistake.fn}
            return reference
        return self.implementation(lesson)

    @pytest.fixture
    def claim(self, request: pytest.FixtureRequest) -> ClaimRecord:
        """Record what the claim measured: checks (with margins), tables and figures."""
        lesson = self.lesson_of(request.path)
        record = ClaimRecord(request.node.nodeid, lesson.name if lesson else None, self.run_seed,
                             self.plots)
        self.records[request.node.nodeid] = record
        return record

    # --- running --------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Any:
        """A stub met by any lesson test is "not started"; calls to exercise functions are
        recorded for the diagnosis. Exercise tests run on one thread: their tensors are tiny,
        and on a busy machine extra threads only wait for each other (200x slower was seen)."""
        token = CALLS.set([])
        outcome = self.outcomes.get(pyfuncitem.nodeid)
        single = outcome is not None and outcome.kind is Kind.EXERCISE
        with threads(1) if single else contextlib.nullcontext():
            try:
                return (yield)
            except NotStarted as err:
                pytest.skip(str(err))
            finally:
                CALLS.reset(token)

    @pytest.hookimpl(tryfirst=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool | None:
        """Exercise tests: on time-out, name the learner's function that was running."""
        outcome = self.outcomes.get(item.nodeid)
        if (outcome is None or outcome.kind is not Kind.EXERCISE
                or threading.current_thread() is not threading.main_thread()):
            return None
        limit = settings.timeout

        def handler(signum: int, frame: Any) -> None:
            __tracebackhide__ = True
            impl = self.implementations.get(outcome.lesson or "")
            running = impl.running[-1] if impl and impl.running else None
            where = f" ({impl.where(running)})" if running and impl else ""
            who = f"{running}{where}" if running else "the test"
            pytest.fail(f"{who} did not return within the {limit:g} s limit: an endless loop?",
                        pytrace=False)

        def cancel() -> None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)

        item.cancel_timeout = cancel  # type: ignore[attr-defined]  (pytest-timeout calls it)
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, limit)
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Any:
        report = yield
        outcome = self.outcomes.get(item.nodeid)
        if (report.failed and call.excinfo is not None and outcome is not None
                and outcome.kind is Kind.EXERCISE and outcome.mistake is None):
            report.longrepr = self._short_failure(item, call.excinfo, outcome)
        return report

    def _short_failure(self, item: pytest.Item, excinfo: pytest.ExceptionInfo,
                       outcome: Outcome) -> str:
        """A failing exercise test in a few lines: the diagnosis first, never the reference
        code; the learner's own traceback only when the learner's code raised."""
        doc = (getattr(item, "obj", None).__doc__ or "").strip().splitlines()
        claim = f"this test checks: {doc[0]}" if doc else ""
        err = excinfo.value
        if isinstance(err, (diagnosis.WrongAnswer, InputModified, ClaimFailed)) or \
                excinfo.typename == "Failed":
            return "\n".join(x for x in (claim, str(err)) if x)
        impl = self.implementations.get(outcome.lesson or "")
        source = impl.source.resolve() if impl and impl.source else None
        frames = [f for f in traceback.extract_tb(err.__traceback__)
                  if source is not None and Path(f.filename).resolve() == source]
        if frames:
            shown = "".join(traceback.format_list(frames))
            return "\n".join(x for x in (claim, "your code raised:", shown.rstrip(),
                                         f"{type(err).__name__}: {err}") if x)
        if isinstance(err, AssertionError):
            return "\n".join(x for x in (claim, f"{type(err).__name__}: {err}") if x)
        return report_default(excinfo)

    def pytest_report_teststatus(self, report: pytest.TestReport) -> Any:
        if report.skipped:
            reason = _skip_reason(report)
            if reason.startswith("does not import"):
                return "does not import", "I", ("DOES NOT IMPORT", {"red": True})
            if Status.NOT_STARTED.value in reason:
                return "not started", "n", ("NOT STARTED", {"yellow": True})
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = self.outcomes.get(report.nodeid)
        if outcome is None or not (report.when == "call" or report.outcome != "passed"):
            return
        if report.skipped:
            reason = _skip_reason(report)
            outcome.status = (Status.DOES_NOT_IMPORT if reason.startswith("does not import")
                              else Status.NOT_STARTED if Status.NOT_STARTED.value in reason
                              else Status.SKIPPED)
            outcome.message = reason
        elif report.failed:
            outcome.status = Status.FAILED if report.when == "call" else Status.ERROR
            outcome.message = str(report.longrepr)[-2000:]
        else:
            outcome.status = Status.PASSED

    # --- the summary ----------------------------------------------------------------------------

    def by_lesson(self) -> dict[str, list[Outcome]]:
        grouped: dict[str, list[Outcome]] = defaultdict(list)
        for o in self.outcomes.values():
            if o.lesson:
                grouped[o.lesson].append(o)
        return dict(sorted(grouped.items()))

    def where(self, lesson: Lesson) -> dict[str, str]:
        impl = self.implementations.get(lesson.name)
        if impl is None:
            return {name: lesson.where(name, self.root) for name in lesson.exercises}
        return {name: impl.where(name) for name in lesson.exercises}

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        grouped = self.by_lesson()
        if not grouped or self.with_mistakes:
            return
        tr = terminalreporter
        perturbed = ", perturbed" if self.perturb else ""
        tr.section(f"minimind lessons ({self.mode.value} mode, seed {self.run_seed}{perturbed})")
        for name, outcomes in grouped.items():
            tr.write_line(name)
            claims = [o for o in outcomes if o.kind is Kind.CLAIM and o.status is not
                      Status.NOT_RUN]
            if claims:
                held = sum(o.status is Status.PASSED for o in claims)
                tr.write_line(f"  claims: {held}/{len(claims)} hold")
            for o in claims:
                tr.write_line(f"  [{o.status.value.upper()}] {o.nodeid.split('::', 1)[-1]}")
                record = self.records.get(o.nodeid)
                if record is None:
                    continue
                for table in record.tables:
                    for line in table.render().splitlines():
                        tr.write_line(f"      {line}")
                for check in record.checks:
                    tr.write_line(f"      check: {check.describe()}")
                for path in record.figures:
                    tr.write_line(f"      figure: {path}")
            problem = self.lessons[name].stub_lines
            if isinstance(problem, SourceProblem) and self.mode is Mode.LEARNER:
                tr.write_line(f"  exercises.py {problem}")
            for line in progress_lines(self.lessons[name], outcomes, self.where(
                    self.lessons[name])):
                tr.write_line(line)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.config.getoption("--outcomes-json")
        if not path:
            return
        progress, done, total = [], 0, 0
        for name, outcomes in self.by_lesson().items():
            lesson = self.lessons[name]
            lines = progress_lines(lesson, outcomes, self.where(lesson))
            statuses = [exercise_status(e, outcomes) for e in lesson.exercises]
            if lines:
                progress.append({"lesson": name, "lines": lines})
                done += statuses.count(Status.PASSED)
                total += len(statuses)
        data = {
            "mode": self.mode.value, "seed": self.run_seed, "perturb": self.perturb,
            "outcomes": [vars(o) | {"kind": o.kind.value, "status": o.status.value}
                         for o in self.outcomes.values()],
            "claims": {nodeid: r.to_json() for nodeid, r in self.records.items()},
            "progress": progress, "done": done, "total": total,
        }
        Path(path).write_text(json.dumps(data, indent=1), encoding="utf-8")


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return ""


def report_default(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.getrepr(style="short", chain=False))
