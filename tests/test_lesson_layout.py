"""Every lesson has the same shape: README, stubs with a reference, and tests named as claims."""
import ast
import importlib

import pytest

from minimind.course import Lesson, lesson_dirs

LESSONS = lesson_dirs()


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_lesson_folder_has_readme_exercises_and_tests(path):
    """A lesson folder holds README.md, exercises.py and at least one test_*.py."""
    assert (path / "README.md").is_file()
    assert (path / "exercises.py").is_file()
    assert list(path.glob("test_*.py"))


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_reference_module_defines_every_exercise(path):
    """Each exercise stub has a same-named reference in the module that REFERENCE names."""
    lesson = Lesson.from_dir(path)
    reference = importlib.import_module(lesson.reference)
    missing = [s.name for s in lesson.exercises if not callable(getattr(reference, s.name, None))]
    assert not missing, f"{lesson.reference} lacks {missing}"


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_every_stub_raises_not_implemented(path):
    """Shipped stubs are unwritten: each exercise body raises NotImplementedError."""
    tree = ast.parse((path / "exercises.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            raises = [n for n in ast.walk(node) if isinstance(n, ast.Raise)]
            assert any("NotImplementedError" in ast.unparse(r) for r in raises), node.name


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_every_lesson_test_is_named_as_a_proposition_with_a_docstring(path):
    """Test functions have names that state something (4+ words) and a docstring."""
    for test_file in sorted(path.glob("test_*.py")):
        tree = ast.parse(test_file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                where = f"{test_file.name}::{node.name}"
                doc = ast.get_docstring(node)
                assert doc, f"{where} has no docstring"
                assert len(node.name.split("_")) >= 4, f"{where}: name it as a proposition"
