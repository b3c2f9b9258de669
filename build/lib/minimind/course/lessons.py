"""Lessons on disk: which exercises a lesson has, where the learner writes each one, and the
shipped (pristine) stubs.

A lesson's exercises are declared by the course (its mistakes catalogue), never read from the
learner's file: a learner's helper function is not an exercise, and a file that does not even
parse still has a list of exercises to report on.
"""
from __future__ import annotations

import ast
import hashlib
import json
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding lessons/ and tests/
PRISTINE_MANIFEST = Path(__file__).with_name("pristine_stubs.json")


@dataclass(frozen=True)
class SourceProblem:
    """Why a learner's exercises file cannot be used: it does not parse or does not import."""

    kind: str  # "SyntaxError", "ImportError", ...
    message: str
    file: Path
    line: int | None

    def __str__(self) -> str:
        where = f"{self.file.name}:{self.line}" if self.line else self.file.name
        return f"does not import: {self.kind} at {where}: {self.message}"


def function_lines(path: Path, names: tuple[str, ...]) -> dict[str, int] | SourceProblem:
    """Line of each named function's `raise NotImplementedError` (else its `def`) in a file."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        return SourceProblem("SyntaxError", err.msg, path, err.lineno)
    except (OSError, UnicodeDecodeError) as err:
        return SourceProblem(type(err).__name__, str(err), path, None)
    lines = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            raises = [n.lineno for n in ast.walk(node) if isinstance(n, ast.Raise)
                      and "NotImplementedError" in ast.unparse(n)]
            lines[node.name] = raises[0] if raises else node.lineno
    return lines


@dataclass(frozen=True)
class Lesson:
    """One lesson folder; `exercises` come from the course's catalogue, in teaching order."""

    path: Path
    reference: str  # the module holding the reference answers, e.g. "minimind.norm"
    exercises: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def exercises_file(self) -> Path:
        return self.path / "exercises.py"

    @cached_property
    def stub_lines(self) -> dict[str, int] | SourceProblem:
        return function_lines(self.exercises_file, self.exercises)

    def where(self, name: str, root: Path | None = None) -> str:
        """file:line where the learner writes `name` (the file relative to root when given)."""
        lines = self.stub_lines
        line = (lines.line if isinstance(lines, SourceProblem) else lines.get(name)) or 1
        return f"{display_path(self.exercises_file, root)}:{line}"


def display_path(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def lesson_dirs(lessons_dir: Path) -> list[Path]:
    """Lesson folders (NN_topic with an exercises.py) in course order."""
    if not lessons_dir.is_dir():
        return []
    return sorted(p for p in lessons_dir.iterdir() if (p / "exercises.py").is_file())


def lesson_folder_of(path: Path) -> Path | None:
    """The lesson folder (lessons/NN_topic with an exercises.py) a test file belongs to."""
    for parent in [path.resolve(), *path.resolve().parents]:
        if parent.parent.name == "lessons" and (parent / "exercises.py").is_file():
            return parent
    return None


# --- the shipped stubs ------------------------------------------------------------------------
# The suite's own checks of the stubs (each raises NotImplementedError; learner mode on them
# reports "not started") must test what the course ships, not a learner's work in progress. The
# manifest records each shipped file's git blob id, so the pristine text can be read back from
# the repository's objects even after the learner has edited (or committed) the working file.

def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def read_manifest() -> dict[str, str]:
    if not PRISTINE_MANIFEST.is_file():
        return {}
    return json.loads(PRISTINE_MANIFEST.read_text(encoding="utf-8"))


def write_manifest(lessons_dir: Path) -> dict[str, str]:
    """Record the current exercises.py of every lesson as the shipped stub (developers only)."""
    manifest = {p.name: git_blob_id((p / "exercises.py").read_bytes())
                for p in lesson_dirs(lessons_dir)}
    PRISTINE_MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


class PristineUnavailable(LookupError):
    """The shipped stub differs from the working file and git cannot give it back."""


def pristine_stub(lesson_dir: Path, manifest: dict[str, str] | None = None) -> str:
    """The text of a lesson's exercises.py as shipped."""
    blob = (read_manifest() if manifest is None else manifest).get(lesson_dir.name)
    if blob is None:
        raise PristineUnavailable(f"{lesson_dir.name} is not in {PRISTINE_MANIFEST.name}")
    data = (lesson_dir / "exercises.py").read_bytes()
    if git_blob_id(data) == blob:
        return data.decode("utf-8")
    try:
        out = subprocess.run(["git", "cat-file", "blob", blob], cwd=lesson_dir,
                             capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        raise PristineUnavailable(
            f"{lesson_dir.name}/exercises.py holds your work and git cannot return the shipped "
            f"stub ({blob[:10]}): {err}") from None
    return out.stdout.decode("utf-8")


if __name__ == "__main__":  # developers: record the current stubs as the shipped ones
    for lesson, blob in write_manifest(PACKAGE_ROOT / "lessons").items():
        print(f"{lesson}: {blob}")
