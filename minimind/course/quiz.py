"""Each lesson's self-test quiz: questions read from `lessons/NN_topic/quiz.toml`, answers checked
in the terminal (`minimind quiz 01`) and on the course site, each followed by its explanation.

A question is either multiple choice (`options`, the right one's index in `answer`) or a number
(`answer`, or `compute`). A `compute` question names a function of the course
(`"minimind.course.answers:tied_embedding_saving"`) that derives the answer from the library's
code at check time, so the key follows the code when the code changes; a choice question may
name a `verify` function that computes its right option from the code, which the course's tests
compare with the key. An explanation may use `{answer}` (the right answer, formatted).

    [[question]]
    id = "tying"
    text = "How many parameters does weight tying save in minimind2-small?"
    compute = "minimind.course.answers:tied_embedding_saving"
    explanation = "The output head reuses the 6400 x 512 embedding: {answer} weights."

`python -m minimind.course.quiz --write` rewrites each README's `## Quiz` section from its quiz.
"""
from __future__ import annotations

import argparse
import importlib
import math
import re
import sys
import textwrap
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from minimind.course.lessons import PACKAGE_ROOT

QUIZ_FILE = "quiz.toml"
KINDS = ("choice", "number")
LETTERS = "abcdefghij"
DEFAULT_TOLERANCE = 1e-6  # relative: integers must match exactly, floats to their printed digits


class QuizError(ValueError):
    """A quiz file that cannot be used as written."""


def _resolve(ref: str) -> Callable[[], object]:
    module, _, name = ref.partition(":")
    if not module or not name:
        raise QuizError(f"{ref!r}: write a function reference as 'package.module:function'")
    try:
        func = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise QuizError(f"{ref!r} does not name a function: {err}") from err
    if not callable(func):
        raise QuizError(f"{ref!r} is not callable")
    return func


def format_number(value: float) -> str:
    """3276800 -> '3,276,800'; 40889.94 -> '40,889.9'; 0.0035355 -> '0.003536'."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if 1e3 <= abs(value) < 1e15:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def parse_number(text: str) -> float:
    """A learner's number: '3,276,800', '3 276 800', '3_276_800', '1e-4' or '25%' (0.25)."""
    cleaned = re.sub(r"[,_\s]", "", text.strip())
    scale = 1.0
    if cleaned.endswith("%"):
        cleaned, scale = cleaned[:-1], 0.01
    try:
        return float(cleaned) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


@dataclass(frozen=True)
class Question:
    id: str
    kind: str  # "choice" or "number"
    text: str
    explanation: str
    options: tuple[str, ...] = ()
    answer: float | int | None = None  # option index (choice) or the number, when not computed
    compute: str | None = None  # "module:function" giving the number from the code
    verify: str | None = None  # "module:function" giving the right option index from the code
    tolerance: float = DEFAULT_TOLERANCE
    unit: str = ""

    @classmethod
    def from_dict(cls, data: dict, where: str) -> Question:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise QuizError(f"{where}: unknown field(s) {sorted(unknown)}")
        for name in ("id", "text", "explanation"):
            if not isinstance(data.get(name), str) or not data[name].strip():
                raise QuizError(f"{where}: '{name}' must be a non-empty string")
        kind = data.get("kind", "choice" if "options" in data else "number")
        if kind not in KINDS:
            raise QuizError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
        options = tuple(data.get("options", ()))
        if kind == "choice":
            if not 2 <= len(options) <= len(LETTERS):
                raise QuizError(f"{where}: a choice question needs 2..{len(LETTERS)} options")
            answer = data.get("answer")
            if not isinstance(answer, int) or not 0 <= answer < len(options):
                raise QuizError(f"{where}: 'answer' must be the index (from 0) of an option")
            if "compute" in data:
                raise QuizError(f"{where}: 'compute' is for number questions; use 'verify'")
        else:
            if options or "verify" in data:
                raise QuizError(f"{where}: a number question has no options and no 'verify'")
            if ("answer" in data) == ("compute" in data):
                raise QuizError(f"{where}: give exactly one of 'answer' and 'compute'")
        return cls(id=data["id"], kind=kind, text=data["text"].strip(),
                   explanation=data["explanation"].strip(), options=options,
                   answer=data.get("answer"), compute=data.get("compute"),
                   verify=data.get("verify"),
                   tolerance=float(data.get("tolerance", DEFAULT_TOLERANCE)),
                   unit=data.get("unit", ""))

    @property
    def computed(self) -> bool:
        return self.compute is not None or self.verify is not None

    def expected(self) -> float | int:
        """The right answer: the option index, or the number (computed from the code now)."""
        if self.compute is not None:
            value = _resolve(self.compute)()
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise QuizError(f"{self.compute} returned {value!r}, not a finite number")
            return value
        assert self.answer is not None
        return self.answer

    def verified_option(self) -> int | None:
        """The option index the `verify` function computes from the code (None without one)."""
        return None if self.verify is None else int(_resolve(self.verify)())  # type: ignore[call-overload]

    def answer_text(self, expected: float | int | None = None) -> str:
        value = self.expected() if expected is None else expected
        if self.kind == "choice":
            return f"({LETTERS[int(value)]}) {self.options[int(value)]}"
        return format_number(value) + (f" {self.unit}" if self.unit else "")

    def explain(self, expected: float | int | None = None) -> str:
        return self.explanation.replace("{answer}", self.answer_text(expected))

    def grade(self, response: str, expected: float | int | None = None) -> bool:
        """Whether a learner's response (an option letter or number, or a number) is right."""
        value = self.expected() if expected is None else expected
        response = response.strip().lower().strip("()").strip()
        if self.kind == "choice":
            if len(response) == 1 and response in LETTERS[:len(self.options)]:
                return LETTERS.index(response) == value
            if response.isdigit():
                return int(response) - 1 == value
            raise ValueError(f"answer with a letter a..{LETTERS[len(self.options) - 1]}")
        given = parse_number(response)
        return math.isclose(given, float(value), rel_tol=self.tolerance, abs_tol=1e-12)


@dataclass(frozen=True)
class Quiz:
    lesson: str  # the lesson folder's name
    path: Path
    questions: tuple[Question, ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions)


def load_quiz(path: Path) -> Quiz:
    """Read and check a quiz.toml (path of the file or of its lesson folder)."""
    if path.is_dir():
        path = path / QUIZ_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QuizError(f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise QuizError(f"{path}: {err}") from None
    raw = data.get("question")
    if not isinstance(raw, list) or not raw:
        raise QuizError(f"{path}: no [[question]] tables")
    questions = tuple(Question.from_dict(q, f"{path}: question {i + 1}")
                      for i, q in enumerate(raw))
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise QuizError(f"{path}: question ids repeat: {ids}")
    return Quiz(path.parent.name, path, questions)


def lesson_folders(root: Path = PACKAGE_ROOT) -> list[Path]:
    """Every lesson folder (`lessons/NN_topic/`), in order."""
    return sorted(p for p in (root / "lessons").glob("[0-9][0-9]_*") if p.is_dir())


def find_lesson(key: str, root: Path = PACKAGE_ROOT) -> Path:
    """'01', '1', '01_normalization' or 'normalization' -> the lesson folder."""
    folders = lesson_folders(root)
    key = key.strip().rstrip("/").split("/")[-1]
    if key.isdigit():
        key = f"{int(key):02d}"
    matches = [p for p in folders if p.name == key or p.name.startswith(f"{key}_")
               or p.name.split("_", 1)[-1] == key]
    if len(matches) != 1:
        names = ", ".join(p.name for p in folders)
        raise QuizError(f"no lesson {key!r}; the lessons are: {names}")
    return matches[0]


def quizzes(root: Path = PACKAGE_ROOT) -> list[Quiz]:
    """The quiz of every lesson that has one."""
    return [load_quiz(p) for p in lesson_folders(root) if (p / QUIZ_FILE).is_file()]


# --- the README's Quiz section -------------------------------------------------------------------

def readme_section(quiz: Quiz) -> str:
    """The `## Quiz` section a README shows for its quiz: the questions, not the answers."""
    number = quiz.lesson.split("_", 1)[0]
    intro = (f"Answer in the terminal with `minimind quiz {number}` (each answer is checked and "
             "explained), or on the lesson's quiz page of the course site (`minimind site "
             "serve`). Answers marked *computed* are derived from the code in `minimind/` when "
             "you check them. The questions live in `quiz.toml`; this section is generated "
             "from it (`python -m minimind.course.quiz --write`).")
    lines = ["## Quiz", "", _wrap(intro), ""]
    for i, q in enumerate(quiz, 1):
        tag = " *(computed)*" if q.compute else ""
        lines.append(_wrap(q.text + tag, f"{i}. ", "   "))
        for letter, option in zip(LETTERS, q.options):
            lines.append(_wrap(option, f"   - ({letter}) ", "     "))
    return "\n".join(lines) + "\n"


def _wrap(text: str, first: str = "", rest: str = "") -> str:
    return textwrap.fill(text, width=96, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False, break_long_words=False)


def _indent(text: str, n: int) -> str:
    return text.replace("\n", "\n" + " " * n)


QUIZ_SECTION = re.compile(r"^## Quiz\s*\n.*?(?=^## |\Z)", re.M | re.S)


def readme_with_quiz(readme: str, quiz: Quiz) -> str:
    if not QUIZ_SECTION.search(readme):
        raise QuizError(f"{quiz.lesson}/README.md has no '## Quiz' section")
    section = readme_section(quiz)
    match = QUIZ_SECTION.search(readme)
    assert match is not None
    tail = readme[match.end():]
    return readme[:match.start()] + section + ("\n" + tail if tail else "")


def write_readmes(root: Path = PACKAGE_ROOT) -> list[Path]:
    """Rewrite the Quiz section of every README whose lesson has a quiz; returns those changed."""
    changed = []
    for quiz in quizzes(root):
        readme = quiz.path.parent / "README.md"
        old = readme.read_text(encoding="utf-8")
        new = readme_with_quiz(old, quiz)
        if new != old:
            readme.write_text(new, encoding="utf-8")
            changed.append(readme)
    return changed


# --- asking in the terminal ----------------------------------------------------------------------

def run_quiz(quiz: Quiz, answers: list[str] | None = None, stdin: TextIO | None = None,
             out: TextIO | None = None) -> int:
    """Ask every question (or take `answers` in order), check each and explain it.

    Returns the number of wrong answers (0: all right)."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    right = 0
    title = quiz.lesson.replace("_", " ", 1)
    print(f"Quiz, lesson {title}: {len(quiz.questions)} questions.", file=out)
    for i, q in enumerate(quiz.questions, 1):
        expected = q.expected()
        print(f"\n{i}. {q.text}", file=out)
        for letter, option in zip(LETTERS, q.options):
            print(f"   ({letter}) {option}", file=out)
        prompt = "your answer (a letter): " if q.kind == "choice" else "your answer (a number): "
        while True:
            if answers is not None:
                response = answers[i - 1] if i - 1 < len(answers) else ""
                print(f"{prompt}{response}", file=out)
            else:
                print(prompt, end="", file=out, flush=True)
                line = stdin.readline()
                if not line:  # end of input: the rest count as unanswered
                    response = ""
                    print(file=out)
                else:
                    response = line.strip()
            try:
                ok = bool(response) and q.grade(response, expected)
                break
            except ValueError as err:
                if answers is not None:
                    ok = False
                    print(f"   ({err})", file=out)
                    break
                print(f"   {err}; try again", file=out)
        right += ok
        verdict = "right." if ok else f"not quite: the answer is {q.answer_text(expected)}."
        print(f"   {verdict}", file=out)
        print(_indent("   " + q.explain(expected), 3), file=out)
    print(f"\n{right} / {len(quiz.questions)} right.", file=out)
    return len(quiz.questions) - right


def split_answers(text: str) -> list[str]:
    """'b, 3,276,800' would be ambiguous: answers are separated by ';' (or by ',' when no answer
    holds a comma-grouped number, e.g. 'b,c,4096')."""
    if ";" in text:
        return [a.strip() for a in text.split(";")]
    return [a.strip() for a in text.split(",")]


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minimind.course.quiz",
                                     description="Take a lesson's quiz, or regenerate the "
                                     "READMEs' Quiz sections from the quiz files.")
    parser.add_argument("lesson", nargs="?", help="01, 1 or 01_normalization")
    parser.add_argument("--answers", help="answers in order, separated by ';' (no prompts)")
    parser.add_argument("--write", action="store_true",
                        help="rewrite every README's Quiz section from its quiz.toml")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.write:
        for path in write_readmes():
            print(f"wrote {path.relative_to(PACKAGE_ROOT)}")
        return 0
    if not args.lesson:
        parser.error("name a lesson (e.g. 01) or give --write")
    return ask(args.lesson, args.answers)


def ask(lesson: str, answers: str | None) -> int:
    """`minimind quiz LESSON`: 0 when every answer is right, 1 otherwise."""
    folder = find_lesson(lesson)
    if not (folder / QUIZ_FILE).is_file():
        raise QuizError(f"lesson {folder.name} has no quiz yet ({QUIZ_FILE})")
    wrong = run_quiz(load_quiz(folder), split_answers(answers) if answers is not None else None)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
