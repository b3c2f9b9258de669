"""Post-training data made in-process: chat tasks with exact answers and verifiable rewards.

Every task is a prompt, one exact answer and a verifier `reward(completion) -> float`. Two
families, both deterministic from a seed:

    from Shakespeare   speaker   who says a line            (the speaker's name)
                       play      which play a line is from  (the play's title)
                       continue  the line that follows      (partial credit per word)
    procedural         addition  multi-digit a+b            (the sum)
                       reverse   a word backwards           (the reversed word)
                       count     how often a letter occurs  (the count)
                       countdown reach a target from numbers (any right expression scores)

Rewards follow TinyZero's partial credit: 1 for a right answer, FORMAT_CREDIT for an answer of
the right form that is wrong (a number where a number belongs), 0 otherwise. A task renders as
MiniMind's chat record `{"conversations": [{"role", "content"}, ...]}` (what `minimind sft`
reads), as ChatML text (`minimind.tokenizer.render_chat`), and as a DPO preference pair whose
rejected answer is wrong (`preference_pair`).
"""
from __future__ import annotations

import ast
import functools
import operator
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from minimind.data import shakespeare_plays

FORMAT_CREDIT = 0.1  # a well-formed wrong answer: TinyZero's format score
END = "<|im_end|>"  # a completion is read up to the closing marker, if it has one
SHAKESPEARE_KINDS = ("speaker", "play", "continue")
PROCEDURAL_KINDS = ("addition", "reverse", "count", "countdown")
KINDS = SHAKESPEARE_KINDS + PROCEDURAL_KINDS

_INTEGER = re.compile(r"-?\d+")
_WORD = re.compile(r"[a-z]+")
_NAME = re.compile(r"[A-Z][A-Z0-9 .,'&-]*")


class TaskError(ValueError):
    """A task request that cannot be met (unknown kind, bad size)."""


def answer_text(completion: str) -> str:
    """The answer a completion gives: the text before the first <|im_end|>, stripped."""
    return completion.split(END, 1)[0].strip()


@dataclass(frozen=True)
class Task:
    """One prompt with its exact answer; `reward` scores any completion against it."""

    kind: str
    prompt: str
    answer: str
    numbers: tuple[int, ...] = ()  # countdown: the numbers to use, each at most once
    target: int | None = None  # countdown: the value to reach
    choices: tuple[str, ...] = field(default=(), repr=False)  # names/titles of the right form

    def reward(self, completion: str) -> float:
        """1.0 right, FORMAT_CREDIT well-formed but wrong, 0.0 otherwise (see the module doc)."""
        return _SCORERS[self.kind](self, answer_text(completion))

    def messages(self, system: str | None = None) -> list[dict[str, str]]:
        """The conversation: [system,] user prompt, assistant answer."""
        head = [{"role": "system", "content": system}] if system else []
        return head + [{"role": "user", "content": self.prompt},
                       {"role": "assistant", "content": self.answer}]

    def prompt_messages(self, system: str | None = None) -> list[dict[str, str]]:
        """The conversation without the answer: what a model is asked to complete."""
        return self.messages(system)[:-1]

    def to_sft(self, system: str | None = None) -> dict[str, Any]:
        """MiniMind's SFT record."""
        return {"conversations": self.messages(system)}


# --- verifiers -----------------------------------------------------------------------------------

def _exact(form: re.Pattern[str]) -> Callable[[Task, str], float]:
    def score(task: Task, text: str) -> float:
        if text == task.answer:
            return 1.0
        return FORMAT_CREDIT if form.fullmatch(text) else 0.0
    return score


def _choice(task: Task, text: str) -> float:
    if text == task.answer:
        return 1.0
    return FORMAT_CREDIT if text in task.choices or _NAME.fullmatch(text) else 0.0


def _title(task: Task, text: str) -> float:
    if text == task.answer:
        return 1.0
    return FORMAT_CREDIT if text in task.choices else 0.0


def _continuation(task: Task, text: str) -> float:
    """The share of the reference line's words matched at their positions; 1 only if exact."""
    if text == task.answer:
        return 1.0
    ref, got = task.answer.split(), text.split()
    if not got:
        return 0.0
    hits = sum(a == b for a, b in zip(ref, got))
    return min(hits / len(ref), 0.99)  # a line with extra words is not the exact answer


_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def eval_arithmetic(text: str) -> tuple[float, list[int]]:
    """The value of an expression of integers, + - * / and parentheses, and the integers used.

    Raises ValueError for anything else (names, calls, powers): the verifier never runs code.
    """
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {text!r}") from None
    used: list[int] = []

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(f"only integers, + - * / and parentheses are allowed: {text!r}")

    try:
        result = value(tree)
    except ZeroDivisionError:
        raise ValueError(f"division by zero in {text!r}") from None
    return result, used


def _countdown(task: Task, text: str) -> float:
    try:
        result, used = eval_arithmetic(text)
    except ValueError:
        return 0.0
    pool = list(task.numbers)
    for n in used:
        if n not in pool:
            return FORMAT_CREDIT  # an expression, but with numbers it was not given
        pool.remove(n)
    return 1.0 if abs(result - (task.target or 0)) < 1e-9 else FORMAT_CREDIT


_SCORERS: dict[str, Callable[[Task, str], float]] = {
    "addition": _exact(_INTEGER), "count": _exact(_INTEGER), "reverse": _exact(_WORD),
    "speaker": _choice, "play": _title, "continue": _continuation, "countdown": _countdown,
}


# --- material ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Speech:
    play: str
    speaker: str
    lines: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def speeches() -> tuple[Speech, ...]:
    """Every speech of the 38 plays with its play and speaker, in a fixed order."""
    out = []
    for title, text in shakespeare_plays():
        for block in text.split("\n\n"):
            head, _, body = block.strip().partition(":\n")
            lines = tuple(line for line in body.splitlines() if line.strip())
            if head and lines:
                out.append(Speech(title, head, lines))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def words(min_len: int = 3, max_len: int = 8) -> tuple[str, ...]:
    """Lowercase words of the plays (letters only), sorted: the material of reverse and count."""
    found = set(re.findall(r"\b[a-z]+\b", "\n".join(t for _, t in shakespeare_plays())))
    return tuple(sorted(w for w in found if min_len <= len(w) <= max_len))


# --- generators ----------------------------------------------------------------------------------

def addition(rng: random.Random, digits: int = 2) -> Task:
    """a+b with `digits`-digit operands, answered by the sum."""
    if digits < 1:
        raise TaskError(f"digits must be >= 1, got {digits}")
    low, high = 10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1
    a, b = rng.randint(low, high), rng.randint(low, high)
    return Task("addition", f"{a}+{b}=", str(a + b))


def reverse(rng: random.Random, min_len: int = 3, max_len: int = 5) -> Task:
    """A word of the plays, answered by its letters in reverse order."""
    pool = [w for w in words() if min_len <= len(w) <= max_len]
    if not pool:
        raise TaskError(f"no words of {min_len}..{max_len} letters")
    w = rng.choice(pool)
    return Task("reverse", f"reverse {w}", w[::-1])


def count(rng: random.Random, min_len: int = 3, max_len: int = 8) -> Task:
    """How often a letter occurs in a word (a letter of the word, or sometimes one not in it)."""
    pool = [w for w in words() if min_len <= len(w) <= max_len]
    w = rng.choice(pool)
    letter = rng.choice(w) if rng.random() < 0.8 else rng.choice("abcdefghijklmnopqrstuvwxyz")
    return Task("count", f"count {letter} in {w}", str(w.count(letter)))


def countdown(rng: random.Random, n: int = 3, max_number: int = 9) -> Task:
    """Reach a target from n numbers with + - *, each number used once (the answer is one way)."""
    if n < 2:
        raise TaskError(f"countdown needs at least 2 numbers, got {n}")
    target = 0
    while target <= 0:  # a positive target, as in the game
        numbers = [rng.randint(1, max_number) for _ in range(n)]
        expr = str(numbers[0])
        for x in numbers[1:]:
            op = rng.choice("+-*")
            expr = f"({expr}){op}{x}" if op == "*" and ("+" in expr or "-" in expr) else \
                f"{expr}{op}{x}"
        target = int(eval_arithmetic(expr)[0])
    shown = sorted(numbers)
    return Task("countdown", f"make {target} from {' '.join(map(str, shown))}", expr,
                numbers=tuple(shown), target=target)


def _line_speech(rng: random.Random, min_chars: int = 20) -> tuple[Speech, int]:
    pool = speeches()
    while True:
        s = rng.choice(pool)
        i = rng.randrange(len(s.lines))
        if len(s.lines[i]) >= min_chars:
            return s, i


def speaker(rng: random.Random) -> Task:
    """Who says a line, answered by the speaker's name as the play prints it."""
    s, i = _line_speech(rng)
    names = tuple(sorted({x.speaker for x in speeches() if x.play == s.play}))
    return Task("speaker", f'who says "{s.lines[i]}"', s.speaker, choices=names)


def play(rng: random.Random) -> Task:
    """Which play a line is from, answered by its title."""
    s, i = _line_speech(rng)
    titles = tuple(t for t, _ in shakespeare_plays())
    return Task("play", f'which play has "{s.lines[i]}"', s.play, choices=titles)


def continuation(rng: random.Random) -> Task:
    """The line that follows a line of a speech."""
    pool = speeches()
    while True:
        s = rng.choice(pool)
        if len(s.lines) >= 2:
            i = rng.randrange(len(s.lines) - 1)
            return Task("continue", f'continue "{s.lines[i]}"', s.lines[i + 1])


GENERATORS: dict[str, Callable[..., Task]] = {
    "speaker": speaker, "play": play, "continue": continuation, "addition": addition,
    "reverse": reverse, "count": count, "countdown": countdown,
}


def make_tasks(kind: str | Sequence[str], n: int, seed: int = 0, **options: Any) -> list[Task]:
    """n tasks of one kind (or drawn evenly from several kinds), the same for the same seed.

    `options` go to the generator (`digits=3` for addition, `min_len`/`max_len` for words).
    """
    kinds = [kind] if isinstance(kind, str) else list(kind)
    unknown = [k for k in kinds if k not in GENERATORS]
    if unknown or not kinds:
        raise TaskError(f"unknown task kind {unknown or kinds}; known: {', '.join(KINDS)}")
    if not isinstance(n, int) or n < 0:
        raise TaskError(f"n must be an int >= 0, got {n!r}")
    rng = random.Random(seed)
    return [GENERATORS[kinds[i % len(kinds)]](rng, **options) for i in range(n)]


def multi_turn(tasks: Sequence[Task], system: str | None = None) -> dict[str, Any]:
    """One SFT record holding several tasks as consecutive user/assistant turns."""
    if not tasks:
        raise TaskError("multi_turn needs at least one task")
    msgs = [{"role": "system", "content": system}] if system else []
    for t in tasks:
        msgs += t.messages()
    return {"conversations": msgs}


# --- preferences ---------------------------------------------------------------------------------

def wrong_answer(task: Task, rng: random.Random) -> str:
    """A plausible answer of the right form that the verifier scores below 1."""
    for _ in range(100):
        wrong = _wrong(task, rng)
        if wrong != task.answer and task.reward(wrong) < 1.0:
            return wrong
    raise TaskError(f"no wrong answer found for {task.prompt!r}")


def _wrong(task: Task, rng: random.Random) -> str:
    if task.kind in ("addition", "count"):
        return str(max(int(task.answer) + rng.choice([-2, -1, 1, 2, 10, -10]), 0))
    if task.kind == "reverse":
        letters = list(task.answer)
        i = rng.randrange(len(letters) - 1)
        letters[i], letters[i + 1] = letters[i + 1], letters[i]
        return "".join(letters) if rng.random() < 0.5 else task.answer[::-1]
    if task.kind in ("speaker", "play"):
        return rng.choice(task.choices)
    if task.kind == "continue":
        return rng.choice(rng.choice(speeches()).lines)
    # countdown: the same numbers in another combination, which reaches another value
    nums = list(task.numbers)
    rng.shuffle(nums)
    return rng.choice("+-*").join(map(str, nums))


def preference_pair(task: Task, rng: random.Random,
                    system: str | None = None) -> dict[str, list[dict[str, str]]]:
    """MiniMind's DPO record: the right answer chosen, a wrong one of the same form rejected."""
    chosen = task.messages(system)
    rejected = chosen[:-1] + [{"role": "assistant", "content": wrong_answer(task, rng)}]
    return {"chosen": chosen, "rejected": rejected}


def make_preferences(kind: str | Sequence[str], n: int, seed: int = 0,
                     **options: Any) -> list[dict[str, list[dict[str, str]]]]:
    """n preference pairs from make_tasks(kind, n, seed), deterministic from the seed."""
    rng = random.Random(seed + 1)
    return [preference_pair(t, rng) for t in make_tasks(kind, n, seed, **options)]
