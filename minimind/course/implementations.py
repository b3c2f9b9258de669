"""Which function an exercise test runs, and the guard around every call to it.

Depending on the mode the function comes from the learner's exercises.py (learner), the reference
module (solutions), any file the learner names (--impl FILE), or a catalogued wrong version (the
meta-tests). Every call goes through a guard that turns a stub's NotImplementedError into "not
started", notices a function that changed its input in place, names the function that ran past
the time limit, and records the call so a wrong result can be matched against known mistakes.
"""
from __future__ import annotations

import contextvars
import enum
import importlib
import importlib.util
import inspect
import sys
import unittest
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from minimind.course.lessons import Lesson, SourceProblem, display_path, function_lines
from minimind.course.mistakes import Mistake

NOT_STARTED = "not started"


class Mode(enum.StrEnum):
    """Where exercise functions come from: learner, solutions, impl (--impl FILE) or mistake."""

    LEARNER = enum.auto()
    SOLUTIONS = enum.auto()
    IMPL = enum.auto()
    MISTAKE = enum.auto()


class NotStarted(unittest.SkipTest):
    """A stub that still raises NotImplementedError, or a function the file does not define.

    A skip, not an error, for the test runners in between: hypothesis re-raises a SkipTest at
    once instead of shrinking it as a failure (which reported a stub as failing and flaky)."""


class InputModified(AssertionError):
    """The learner's function wrote into one of its input tensors."""


@dataclass
class Call:
    """One call of an exercise function: inputs as they were before it ran, and its result."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any
    mistakes: list[Mistake]  # the known wrong versions of this exercise


# The calls of the test now running: set by the plugin around each lesson test, read by the
# diagnosis (check_close is a plain function the tests call, handed nothing else).
CALLS: contextvars.ContextVar[list[Call] | None] = contextvars.ContextVar("calls", default=None)


def snapshot(value: Any) -> Any:
    """A copy of tensors and random generators (also inside lists, tuples and dicts); other
    objects are shared. A generator's copy is at the state it had, so a known mistake replays
    the draws the learner's function made from it."""
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, torch.Generator):
        copy = torch.Generator(device=value.device)
        copy.set_state(value.get_state())
        return copy
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(v) for v in value)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    return value


def _changed(before: Any, after: Any) -> bool:
    if isinstance(before, Tensor):
        return before.shape != after.shape or not torch.equal(
            before.nan_to_num(0.0) if before.is_floating_point() else before,
            after.detach().nan_to_num(0.0) if after.is_floating_point() else after.detach(),
        ) or not torch.equal(before.isnan(), after.detach().isnan())
    if isinstance(before, (list, tuple)):
        return any(_changed(b, a) for b, a in zip(before, after))
    if isinstance(before, dict):
        return any(_changed(before[k], after[k]) for k in before)
    return False


def _argument_names(fn: Callable[..., Any], args: tuple, kwargs: dict) -> list[str]:
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        return list(bound.arguments)
    except (TypeError, ValueError):
        return [f"argument {i + 1}" for i in range(len(args))] + list(kwargs)


@dataclass
class Implementation:
    """Where the exercise functions come from in this run; `impl.rms_norm` is the function."""

    lesson: Lesson
    mode: Mode
    module: ModuleType | None = None
    source: Path | None = None  # the learner's file (learner and --impl modes)
    problem: SourceProblem | None = None  # set when that file does not import
    overrides: dict[str, Callable[..., Any]] = field(default_factory=dict)
    root: Path | None = None  # paths in messages are shown relative to it
    known: tuple[Mistake, ...] = ()  # the lesson's catalogued wrong versions, for the diagnosis
    running: list[str] = field(default_factory=list)  # exercise functions executing now

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in self.lesson.exercises:
            raise AttributeError(name)
        return self.function(name)

    def where(self, name: str) -> str:
        """file:line of the learner's `name` (the stub's raise, or its def in an --impl file)."""
        if self.mode is Mode.LEARNER or self.source is None:
            return self.lesson.where(name, self.root)
        lines = function_lines(self.source, (name,))
        line = lines.line if isinstance(lines, SourceProblem) else lines.get(name)
        shown = display_path(self.source, self.root)
        return f"{shown}:{line}" if line else shown

    def function(self, name: str) -> Callable[..., Any]:
        if name in self.overrides:
            return self._guard(name, self.overrides[name])
        if self.problem is not None:
            raise NotStarted(str(self.problem))
        fn = getattr(self.module, name, None) if self.module is not None else None
        if fn is None:
            if self.mode is Mode.SOLUTIONS:
                raise AttributeError(f"{self.lesson.reference} has no reference {name!r}")
            raise NotStarted(f"{NOT_STARTED}: {name} is not defined in {self.where(name)}")
        return self._guard(name, fn)

    def _guard(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            before = snapshot((args, kwargs))
            self.running.append(name)
            try:
                result = fn(*args, **kwargs)
            except NotImplementedError as err:
                if self._raised_in_source(err):
                    raise NotStarted(f"{NOT_STARTED}: write {name} at {self.where(name)}") from None
                raise
            finally:
                if self.running:
                    self.running.pop()
            changed = [arg for arg, b, a in zip(_argument_names(fn, args, kwargs),
                                                [*before[0], *before[1].values()],
                                                [*args, *kwargs.values()]) if _changed(b, a)]
            if changed:
                raise InputModified(
                    f"{name} changed its input {', '.join(map(repr, changed))} in place "
                    f"({self.where(name)}). The caller still needs it: compute into a new "
                    f"tensor (x = x * s, not x *= s or x.mul_(s))."
                )
            log = CALLS.get()
            if log is not None:
                log.append(Call(name, before[0], before[1], result,
                                [m for m in self.known if m.exercise == name]))
            return result

        call.__name__ = name
        call.__wrapped__ = fn  # type: ignore[attr-defined]
        return call

    def _raised_in_source(self, err: BaseException) -> bool:
        tb = err.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is None or self.source is None:
            return False
        return Path(tb.tb_frame.f_code.co_filename).resolve() == self.source.resolve()


def import_file(path: Path, module_name: str) -> ModuleType:
    """Import a Python file by path, under a name of our choosing, afresh each time."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _import_problem(path: Path, err: BaseException) -> SourceProblem:
    """Where in the learner's file an import failed: the syntax error, or the deepest frame
    of the traceback that lies in that file."""
    if isinstance(err, SyntaxError) and err.filename and Path(err.filename).resolve() == path:
        return SourceProblem("SyntaxError", err.msg or str(err), path, err.lineno)
    line = None
    tb = err.__traceback__
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return SourceProblem(type(err).__name__, str(err), path, line)


def resolve(lesson: Lesson, mode: Mode, impl_file: Path | None = None,
            root: Path | None = None, known: tuple[Mistake, ...] = ()) -> Implementation:
    if mode in (Mode.SOLUTIONS, Mode.MISTAKE):
        return Implementation(lesson, mode, importlib.import_module(lesson.reference), root=root,
                              known=known)
    path = (lesson.exercises_file if mode is Mode.LEARNER else impl_file)
    assert path is not None
    path = path.resolve()
    try:
        module = import_file(path, f"_course_{mode.value}_{lesson.name}")
    except Exception as err:  # whatever the learner's file does at import, report it clearly
        return Implementation(lesson, mode, None, path, _import_problem(path, err), root=root,
                              known=known)
    return Implementation(lesson, mode, module, path, root=root, known=known)
