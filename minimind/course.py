"""The course machinery: which function a test exercises, and how a wrong answer is diagnosed.

A lesson's `exercises.py` declares `REFERENCE = "minimind.module"` and defines stubs that raise
NotImplementedError. An exercise test asks the `impl` fixture for a function; depending on the
mode the function comes from the learner's file (default), the reference (`--solutions`), any
module (`--impl FILE`), or a deliberately wrong version (`--mutants FILE`, for the meta-tests).
Calling a stub reports the test as "not started" with the file and line to write.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parent.parent
LESSONS_DIR = ROOT / "lessons"
NOT_STARTED = "not started"


class NotStarted(Exception):
    """Raised in place of a stub's NotImplementedError; the plugin reports it as not started."""


@dataclass
class Stub:
    name: str
    line: int  # where the learner writes: the stub's `raise NotImplementedError`


@dataclass
class Lesson:
    """One lesson folder, read without importing the learner's code (it may not even parse)."""

    path: Path
    reference: str
    exercises: list[Stub]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def exercises_file(self) -> Path:
        return self.path / "exercises.py"

    @classmethod
    def from_dir(cls, path: Path) -> "Lesson":
        source_file = path / "exercises.py"
        tree = ast.parse(source_file.read_text(encoding="utf-8"), filename=str(source_file))
        reference, stubs = "", []
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "REFERENCE" for t in node.targets
            ):
                reference = ast.literal_eval(node.value)
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                raises = [n.lineno for n in ast.walk(node) if isinstance(n, ast.Raise)
                          and "NotImplementedError" in ast.unparse(n)]
                stubs.append(Stub(node.name, raises[0] if raises else node.lineno))
        if not reference:
            raise ValueError(f"{source_file} must set REFERENCE = 'minimind.<module>'")
        return cls(path, reference, stubs)

    def stub(self, name: str) -> Stub:
        for s in self.exercises:
            if s.name == name:
                return s
        raise KeyError(f"{name!r} is not an exercise of {self.name}")

    def where(self, name: str) -> str:
        return f"{self.exercises_file.relative_to(ROOT)}:{self.stub(name).line}"


def lesson_dirs() -> list[Path]:
    return sorted(p for p in LESSONS_DIR.iterdir() if (p / "exercises.py").is_file())


def lesson_of(path: Path) -> Lesson | None:
    """The lesson a test file belongs to (its folder under lessons/), if any."""
    for parent in [path, *path.parents]:
        if parent.parent == LESSONS_DIR and (parent / "exercises.py").is_file():
            return Lesson.from_dir(parent)
    return None


def import_file(path: Path, module_name: str) -> ModuleType:
    """Import a Python file by path, under a name of our choosing, freshly each time."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# --- mutants: deliberately wrong versions, kept under tests/mutants ------------------------------

@dataclass
class Mutant:
    exercise: str  # which exercise function it replaces
    mistake: str  # the plausible mistake it makes
    fn: Callable[..., Any]

    @property
    def id(self) -> str:
        return self.fn.__name__


def mutant(exercise: str, mistake: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a function as a wrong version of `exercise`; meta-tests prove a test catches it."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__mutant__ = Mutant(exercise, mistake, fn)  # type: ignore[attr-defined]
        return fn

    return mark


def mutants_in(module: ModuleType) -> list[Mutant]:
    return [v.__mutant__ for v in vars(module).values() if hasattr(v, "__mutant__")]


# --- resolving an exercise to a function ---------------------------------------------------------

@dataclass
class Implementation:
    """Where exercise functions come from in this run; `impl.rms_norm` gives the function."""

    lesson: Lesson
    mode: str  # "learner", "solutions", "impl" or "mutant"
    module: ModuleType | None = None
    source: Path | None = None  # the file whose NotImplementedError means "not started"
    overrides: dict[str, Callable[..., Any]] = field(default_factory=dict)
    import_error: str | None = None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self.overrides:
            return self.overrides[name]
        if self.import_error:
            raise ImportError(self.import_error)
        fn = getattr(self.module, name, None) if self.module is not None else None
        if fn is None:
            if self.mode == "solutions":
                raise AttributeError(f"{self.lesson.reference} has no reference {name!r}")
            where = self.source or self.lesson.exercises_file
            raise NotStarted(f"{NOT_STARTED}: {name} is not defined in {where}")
        return self._guard(name, fn)

    def _guard(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        source = self.source

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except NotImplementedError as err:
                tb = err.__traceback__
                while tb is not None and tb.tb_next is not None:
                    tb = tb.tb_next
                raised_in = Path(tb.tb_frame.f_code.co_filename).resolve() if tb else None
                if source is not None and raised_in == source.resolve():
                    where = (self.lesson.where(name) if self.mode == "learner"
                             else f"{source}:{fn.__code__.co_firstlineno}")
                    raise NotStarted(f"{NOT_STARTED}: write {name} at {where}") from None
                raise

        call.__name__ = name
        call.__wrapped__ = fn  # type: ignore[attr-defined]
        return call


def resolve(lesson: Lesson, mode: str, impl_file: Path | None = None) -> Implementation:
    if mode == "solutions":
        return Implementation(lesson, mode, importlib.import_module(lesson.reference))
    path = lesson.exercises_file if mode == "learner" else impl_file
    assert path is not None
    module_name = f"_course_{mode}_{lesson.name}"
    try:
        module = import_file(path, module_name)
    except Exception as err:  # a learner's file that does not import is worth a clear message
        msg = f"{path} failed to import: {type(err).__name__}: {err}"
        return Implementation(lesson, mode, None, path, import_error=msg)
    return Implementation(lesson, mode, module, path)


# --- diagnosing a wrong answer -------------------------------------------------------------------

def _index(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    for size in reversed(shape):
        out.append(flat_index % size)
        flat_index //= size
    return tuple(reversed(out))


def diagnose(
    actual: Any, expected: Tensor, *, atol: float, rtol: float,
    mistakes: dict[str, Tensor] | None = None, hint: str = "", check_dtype: bool = True,
) -> str | None:
    """None when actual matches expected; otherwise a message a learner can act on.

    The message gives the shape or dtype found against the one expected, the NaN / inf count,
    the largest difference and where it is, and names a known mistake when `actual` matches the
    output of one (for example `{"eps outside the sqrt": wrong_output}`).
    """
    if not isinstance(actual, Tensor):
        return f"expected a torch.Tensor, got {type(actual).__name__}"
    if tuple(actual.shape) != tuple(expected.shape):
        return (f"shape found {tuple(actual.shape)} vs expected {tuple(expected.shape)}"
                + (f"\n  hint: {hint}" if hint else ""))
    if check_dtype and actual.dtype != expected.dtype:
        return (f"dtype found {actual.dtype} vs expected {expected.dtype} "
                f"(return the input's dtype)")
    a, e = actual.detach().double(), expected.detach().double()
    nan_a, nan_e = int(a.isnan().sum()), int(e.isnan().sum())
    ok_nan = torch.equal(a.isnan(), e.isnan())
    close = torch.isclose(a, e, atol=atol, rtol=rtol, equal_nan=True)
    if ok_nan and bool(close.all()):
        return None
    lines = []
    if nan_a != nan_e:
        lines.append(f"NaN count found {nan_a} vs expected {nan_e}")
    inf_a = int(a.isinf().sum())
    if inf_a:
        lines.append(f"{inf_a} infinite values")
    diff = (a - e).abs().nan_to_num(nan=math.inf)
    worst = int(diff.argmax())
    where = _index(worst, tuple(a.shape))
    lines.append(
        f"max abs diff {diff.flatten()[worst].item():.3g} at index {where} "
        f"(found {a.flatten()[worst].item():.6g}, expected {e.flatten()[worst].item():.6g}); "
        f"{int((~close).sum())} of {close.numel()} elements outside atol={atol:g}, rtol={rtol:g}"
    )
    for mistake, wrong in (mistakes or {}).items():
        if wrong.shape == actual.shape and torch.allclose(
            a, wrong.detach().double(), atol=atol, rtol=rtol, equal_nan=True
        ):
            lines.append(f"this matches a known mistake: {mistake}")
            break
    if hint:
        lines.append(f"hint: {hint}")
    return "\n  ".join(lines)


def check_close(
    actual: Any, expected: Tensor, *, atol: float, rtol: float,
    mistakes: dict[str, Tensor] | None = None, hint: str = "", what: str = "output",
    check_dtype: bool = True,
) -> None:
    """Assert actual ~= expected, failing with `diagnose`'s message."""
    message = diagnose(actual, expected, atol=atol, rtol=rtol, mistakes=mistakes, hint=hint,
                       check_dtype=check_dtype)
    if message is not None:
        raise AssertionError(f"{what} is wrong:\n  {message}")


# --- progress ------------------------------------------------------------------------------------

@dataclass
class Outcome:
    nodeid: str
    lesson: str | None
    kind: str  # "claim", "exercise" or "other"
    exercises: list[str]
    mutant: str | None
    outcome: str = "not run"  # passed, failed, error, not started, skipped
    message: str = ""


def exercise_progress(lesson: Lesson, outcomes: list[Outcome]) -> list[tuple[str, str, str]]:
    """(exercise, status, where) per exercise: done, failing, not started, or not run."""
    rows = []
    for stub in lesson.exercises:
        seen = [o.outcome for o in outcomes if stub.name in o.exercises and o.mutant is None]
        if not seen or all(s in ("not run", "skipped") for s in seen):
            status = "not run"
        elif any(s in ("failed", "error") for s in seen):
            status = "failing"
        elif any(s == NOT_STARTED for s in seen):
            status = NOT_STARTED
        else:
            status = "done"
        rows.append((stub.name, status, lesson.where(stub.name)))
    return rows


def progress_lines(lesson: Lesson, outcomes: list[Outcome]) -> list[str]:
    rows = exercise_progress(lesson, outcomes)
    if all(status == "not run" for _, status, _ in rows):
        return []
    done = sum(status == "done" for _, status, _ in rows)
    lines = [f"  exercises: {done}/{len(rows)} done"]
    width = max(len(name) for name, _, _ in rows)
    for name, status, where in rows:
        lines.append(f"    {name.ljust(width)}  {status:<12} {where}")
    upcoming = next(((n, w) for n, s, w in rows if s != "done"), None)
    if upcoming:
        lines.append(f"  next: {upcoming[0]} at {upcoming[1]}")
    return lines
