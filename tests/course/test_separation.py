"""The model library stands alone: nothing in minimind/ outside the course package imports it."""
import ast

from minimind.course.lessons import PACKAGE_ROOT

LIBRARY = PACKAGE_ROOT / "minimind"
# The command line is the one front door for both: it imports the course lazily, for
# `minimind progress` only.
FRONT_DOORS = {"__main__.py", "cli.py"}


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_the_model_library_never_imports_the_course_machinery():
    """No module of the library (minimind/*.py, minimind/lab/) imports minimind.course."""
    offenders = []
    for path in sorted(LIBRARY.rglob("*.py")):
        rel = path.relative_to(LIBRARY)
        if rel.parts[0] == "course" or str(rel) in FRONT_DOORS:
            continue
        if any(m == "minimind.course" or m.startswith("minimind.course.")
               for m in _imports(path)):
            offenders.append(str(rel))
    assert not offenders, f"library modules importing the course: {offenders}"
