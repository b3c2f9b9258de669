"""Every lesson has the same shape: a README from one template, shipped stubs that match the
course's catalogue, figures the code draws, and tests named as propositions."""
import ast
import importlib
import os
import re

import pytest

from minimind.course.lessons import (
    PACKAGE_ROOT,
    git_blob_id,
    lesson_dirs,
    pristine_stub,
    read_manifest,
)
from minimind.course.mistakes import catalogue

LESSONS = lesson_dirs(PACKAGE_ROOT / "lessons")
IDS = [p.name for p in LESSONS]
README_SECTIONS = ["Why", "What you write (`exercises.py`)", "What the tests measured", "Run it",
                   "Quiz"]


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_lesson_folder_has_readme_exercises_and_tests(path):
    """A lesson folder holds README.md, exercises.py and at least one test_*.py."""
    assert (path / "README.md").is_file()
    assert (path / "exercises.py").is_file()
    assert list(path.glob("test_*.py"))


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_shipped_stubs_are_the_catalogues_exercises_each_raising_not_implemented(path):
    """The shipped exercises.py defines exactly the catalogue's exercises, in order, each
    raising NotImplementedError, and names the catalogue's reference module."""
    tree = ast.parse(pristine_stub(path))
    known = catalogue(path.name)
    public = [n for n in tree.body if isinstance(n, ast.FunctionDef)
              and not n.name.startswith("_")]
    assert tuple(n.name for n in public) == known.exercises
    for node in public:
        raises = [n for n in ast.walk(node) if isinstance(n, ast.Raise)]
        assert any("NotImplementedError" in ast.unparse(r) for r in raises), node.name
    reference = [ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                 and any(getattr(t, "id", "") == "REFERENCE" for t in n.targets)]
    assert reference == [known.reference]


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_reference_module_defines_every_exercise(path):
    """Each exercise has a same-named reference in the catalogue's reference module."""
    known = catalogue(path.name)
    reference = importlib.import_module(known.reference)
    missing = [e for e in known.exercises if not callable(getattr(reference, e, None))]
    assert not missing, f"{known.reference} lacks {missing}"


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_readme_follows_the_lesson_template(path):
    """README sections come in the template's order, with a generated calibration block."""
    text = (path / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+?)\s*$", text, flags=re.M)
    found = [h for h in headings if h in README_SECTIONS]
    assert found == README_SECTIONS, f"level-2 headings {headings}"
    assert re.match(r"# Lesson \d\d: ", text), "first line: '# Lesson NN: topic'"
    assert "<!-- calibration:begin -->" in text and "<!-- calibration:end -->" in text


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_readme_figures_exist_and_every_figure_is_shown(path):
    """Every image the README links exists, and every committed figure is linked."""
    text = (path / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((figures/[^)]+\.png)\)", text))
    missing = [p for p in linked if not (path / p).is_file()]
    assert not missing, f"README links missing figures: {missing}"
    committed = {f"figures/{p.name}" for p in (path / "figures").glob("*.png")}
    assert committed <= linked, f"figures nobody links: {sorted(committed - linked)}"


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_every_lesson_test_is_named_as_a_proposition_with_a_docstring(path):
    """Test functions have names that state something (4+ words) and a docstring."""
    for test_file in sorted(path.glob("test_*.py")):
        tree = ast.parse(test_file.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                where = f"{test_file.name}::{node.name}"
                assert ast.get_docstring(node), f"{where} has no docstring"
                assert len(node.name.split("_")) >= 4, f"{where}: name it as a proposition"


@pytest.mark.skipif(not os.environ.get("CI"), reason="a learner's exercises.py differs by design")
def test_the_shipped_stub_manifest_records_the_committed_stubs():
    """In CI (a clean clone) every exercises.py is the stub the manifest records; after changing
    a stub, run `python -m minimind.course.lessons` to record it."""
    manifest = read_manifest()
    stale = [p.name for p in LESSONS
             if manifest.get(p.name) != git_blob_id((p / "exercises.py").read_bytes())]
    assert not stale, f"pristine_stubs.json is stale for {stale}"
