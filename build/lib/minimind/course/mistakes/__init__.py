"""The catalogue of known mistakes: for each lesson, its exercises and their plausible wrong
versions, each defined once with the hint a learner who made it needs.

The same entries serve twice: the diagnosis runs every wrong version of an exercise on the
learner's inputs and names the one whose output the learner's matches, and the suite's
meta-tests run every exercise test against every wrong version to prove the tests catch it.
One module per lesson, named after the lesson without its number (01_normalization ->
normalization), defining REFERENCE, EXERCISES and the wrong versions:

    @mistake("rms_norm", "eps added outside the sqrt", hint="eps belongs under the root ...")
    def rms_eps_outside_sqrt(x, weight, eps=1e-5): ...
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Mistake:
    exercise: str  # the exercise function it is a wrong version of
    description: str  # what is wrong, as the diagnosis names it
    hint: str  # what to do about it, shown with the description
    fn: Callable[..., Any]

    @property
    def id(self) -> str:
        return self.fn.__name__


def mistake(exercise: str, description: str, *, hint: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as a known wrong version of `exercise`."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__mistake__ = Mistake(exercise, description, hint, fn)  # type: ignore[attr-defined]
        return fn

    return register


@dataclass(frozen=True)
class Catalogue:
    lesson: str
    reference: str  # module with the reference answers
    exercises: tuple[str, ...]  # in the order the learner meets them
    mistakes: tuple[Mistake, ...]

    def of(self, exercise: str) -> list[Mistake]:
        return [m for m in self.mistakes if m.exercise == exercise]


def module_name(lesson: str) -> str:
    """01_normalization -> minimind.course.mistakes.normalization"""
    topic = lesson.split("_", 1)[1] if lesson[:2].isdigit() else lesson
    return f"{__name__}.{topic}"


def catalogue(lesson: str) -> Catalogue | None:
    """The lesson's catalogue, or None for a folder the course does not know."""
    try:
        module = importlib.import_module(module_name(lesson))
    except ModuleNotFoundError as err:
        if err.name == module_name(lesson):
            return None
        raise
    found = [v.__mistake__ for v in vars(module).values() if hasattr(v, "__mistake__")]
    unknown = {m.exercise for m in found} - set(module.EXERCISES)
    if unknown:
        raise ValueError(f"{module.__name__}: mistakes for unknown exercises {sorted(unknown)}")
    return Catalogue(lesson, module.REFERENCE, tuple(module.EXERCISES), tuple(found))
