"""Diagnosing a wrong answer: what differs, where, and which known mistake it matches.

`check_close(found, expected, ...)` is what exercise tests assert with. When `found` is the
result of a call to the learner's function, every catalogued wrong version of that exercise is
run on the same inputs; if one gives the learner's output, the message names it and gives its
hint. Otherwise the hint stays neutral: it cannot know what went wrong, so it says where to look.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from minimind.course.implementations import CALLS, Call, snapshot
from minimind.course.mistakes import Mistake


class WrongAnswer(AssertionError):
    """An exercise's output differs from the expected one; the message is the diagnosis."""


def _index(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    for size in reversed(shape):
        out.append(flat_index % size)
        flat_index //= size
    return tuple(reversed(out))


def _close(a: Tensor, b: Tensor, atol: float, rtol: float) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.isclose(
        a.detach().double(), b.detach().double(), atol=atol, rtol=rtol, equal_nan=True).all())


def _as_tensor(value: Any) -> Any:
    """A Python number as a float64 scalar tensor (exercises may return a float); else as is."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)
    return value


def _item_of(result: Any, found: Any) -> int | None:
    """The index of `found` in a tuple `result` (an exercise returning (cos, sin)), else None."""
    if isinstance(result, tuple):
        for i, item in enumerate(result):
            if item is found:
                return i
    return None


def _call_that_returned(found: Any) -> Call | None:
    """The exercise call whose result is `found`, or whose tuple result holds `found`."""
    for call in reversed(CALLS.get() or []):
        if call.result is found or _item_of(call.result, found) is not None:
            return call
    return None


def matching_mistake(found: Tensor, atol: float, rtol: float,
                     returned: Any = None) -> Mistake | None:
    """The known wrong version that, given the learner's inputs, returns the learner's output.

    `returned` is the object the learner's function returned when `found` is its tensor form
    (a float made a tensor); an item of a tuple result is matched against the same item."""
    returned = found if returned is None else returned
    call = _call_that_returned(returned)
    if call is None:
        return None
    index = None if call.result is returned else _item_of(call.result, returned)
    partial = None  # a wrong version that gives this item but not the learner's other items
    for candidate in call.mistakes:
        args, kwargs = snapshot((call.args, call.kwargs))
        try:
            with torch.no_grad():
                wrong = candidate.fn(*args, **kwargs)
        except Exception:  # a wrong version may not apply to these inputs at all
            continue
        if index is None:
            if _close_any(found, wrong, atol, rtol):
                return candidate
            continue
        if not (isinstance(wrong, tuple) and len(wrong) == len(call.result)):
            continue
        if not _close_any(found, wrong[index], atol, rtol):
            continue
        if all(_close_any(_as_tensor(mine), theirs, atol, rtol)
               for mine, theirs in zip(call.result, wrong)):
            return candidate  # the whole result matches: this is the mistake, not a look-alike
        partial = partial or candidate
    return partial


def _close_any(found: Any, wrong: Any, atol: float, rtol: float) -> bool:
    wrong = _as_tensor(wrong)
    return (isinstance(found, Tensor) and isinstance(wrong, Tensor)
            and _close(found, wrong, atol, rtol))


def diagnose(found: Any, expected: Tensor, *, atol: float, rtol: float,
             check_dtype: bool = True) -> str | None:
    """None when found matches expected; otherwise the few lines a learner can act on."""
    if not isinstance(found, Tensor):
        return f"expected a torch.Tensor, got {type(found).__name__}"
    if tuple(found.shape) != tuple(expected.shape):
        return f"shape found {tuple(found.shape)} vs expected {tuple(expected.shape)}"
    if check_dtype and found.dtype != expected.dtype:
        return f"dtype found {found.dtype} vs expected {expected.dtype}"
    a, e = found.detach().double(), expected.detach().double()
    close = torch.isclose(a, e, atol=atol, rtol=rtol, equal_nan=True)
    if torch.equal(a.isnan(), e.isnan()) and bool(close.all()):
        return None
    lines = []
    nan_a, nan_e = int(a.isnan().sum()), int(e.isnan().sum())
    if nan_a != nan_e:
        lines.append(f"NaN count found {nan_a} vs expected {nan_e}")
    inf_a = int(a.isinf().sum())
    if inf_a:
        lines.append(f"{inf_a} infinite values")
    diff = (a - e).abs().nan_to_num(nan=math.inf)
    worst = int(diff.argmax())
    lines.append(
        f"largest difference {diff.flatten()[worst].item():.3g} at index "
        f"{_index(worst, tuple(a.shape))}: found {a.flatten()[worst].item():.6g}, expected "
        f"{e.flatten()[worst].item():.6g} ({int((~close).sum())} of {close.numel()} elements "
        f"off by more than atol={atol:g} + rtol={rtol:g})"
    )
    return "\n".join(lines)


def check_close(found: Any, expected: Any, *, atol: float, rtol: float, what: str = "output",
                check_dtype: bool = True) -> None:
    """Assert found ~= expected; on failure raise WrongAnswer with the diagnosis."""
    __tracebackhide__ = True
    returned = found
    found, expected = _as_tensor(found), _as_tensor(expected)
    message = diagnose(found, expected, atol=atol, rtol=rtol, check_dtype=check_dtype)
    if message is None:
        return
    call = _call_that_returned(returned)
    head = f"{call.name} returned a wrong {what}" if call else f"the {what} is wrong"
    lines = [head + ":", *message.splitlines()]
    known = matching_mistake(found, atol, rtol, returned) if isinstance(found, Tensor) else None
    if known is not None:
        lines += [f"this matches a known mistake: {known.description}", f"hint: {known.hint}"]
    elif call is not None:
        lines.append(f"hint: no known mistake gives this {what}; re-read what {call.name}'s "
                     f"docstring asks for and try it on a tiny input by hand")
    raise WrongAnswer("\n  ".join(lines))


def _plain(value: Any) -> Any:
    """Lists and tuples compared alike (a merge may come back as [a, b] or (a, b))."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_difference(found: Any, expected: Any) -> str | None:
    """None when found == expected (lists and tuples alike); otherwise where they first differ."""
    a, e = _plain(found), _plain(expected)
    if a == e:
        return None
    if type(a) is not type(e):
        return (f"expected a {type(expected).__name__}, got {type(found).__name__}: "
                f"{_shown(found)}")
    if isinstance(a, dict):
        missing = [k for k in e if k not in a]
        extra = [k for k in a if k not in e]
        wrong = [k for k in e if k in a and a[k] != e[k]]
        lines = [f"{len(a)} entries found vs {len(e)} expected"]
        if missing:
            lines.append(f"missing keys ({len(missing)}), e.g. {_shown(missing[:3])}")
        if extra:
            lines.append(f"unexpected keys ({len(extra)}), e.g. {_shown(extra[:3])}")
        if wrong:
            k = wrong[0]
            lines.append(f"{len(wrong)} wrong values, e.g. at {k!r}: found {_shown(a[k])}, "
                         f"expected {_shown(e[k])}")
        return "\n".join(lines)
    if isinstance(a, (list, str, bytes)):
        first = next((i for i, (x, y) in enumerate(zip(a, e)) if x != y), min(len(a), len(e)))
        lo = max(first - 3, 0)
        return (f"length found {len(a)} vs expected {len(e)}; first difference at index "
                f"{first}: found {_shown(a[lo:first + 4])}, expected {_shown(e[lo:first + 4])}"
                f" (from index {lo})")
    return f"found {_shown(found)}, expected {_shown(expected)}"


def matching_mistake_exactly(found: Any) -> Mistake | None:
    """The known wrong version that, given the learner's inputs, returns exactly `found`."""
    call = _call_that_returned(found)
    if call is None:
        return None
    for candidate in call.mistakes:
        args, kwargs = snapshot((call.args, call.kwargs))
        try:
            wrong = candidate.fn(*args, **kwargs)
        except Exception:  # a wrong version may not apply to these inputs at all
            continue
        if _plain(wrong) == _plain(found):
            return candidate
    return None


def check_equal(found: Any, expected: Any, *, what: str = "output") -> None:
    """Assert found == expected for plain Python results (token ids, merge lists, counts,
    strings); on failure raise WrongAnswer saying where they first differ and, when a known
    wrong version returns exactly the learner's result, naming it."""
    __tracebackhide__ = True
    message = describe_difference(found, expected)
    if message is None:
        return
    call = _call_that_returned(found)
    head = f"{call.name} returned a wrong {what}" if call else f"the {what} is wrong"
    lines = [head + ":", *message.splitlines()]
    known = matching_mistake_exactly(found)
    if known is not None:
        lines += [f"this matches a known mistake: {known.description}", f"hint: {known.hint}"]
    elif call is not None:
        lines.append(f"hint: no known mistake gives this {what}; re-read what {call.name}'s "
                     f"docstring asks for and try it on a tiny input by hand")
    raise WrongAnswer("\n  ".join(lines))
