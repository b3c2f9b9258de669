"""The three ways to run the exercise tests: on the shipped stubs, on the reference, on a mix."""
import pytest

from minimind.course.lessons import PACKAGE_ROOT, lesson_dirs

LESSONS = [p.name for p in lesson_dirs(PACKAGE_ROOT / "lessons")]


def test_shipped_stubs_are_all_reported_not_started(copy_lesson, run_course, outcomes_of):
    """On copies of every lesson with the shipped stubs, every exercise test is 'not started'
    (none passes, fails or errors), and the summary points at each stub's line."""
    for name in LESSONS:
        copy_lesson(name)
    result = run_course("lessons", "-m", "exercise")
    seen = outcomes_of(result)
    assert seen, result.stdout.str()[-2000:]
    assert set(seen.values()) == {"skipped"}, result.stdout.str()[-3000:]
    out = result.stdout.str()
    assert f"{len(seen)} not started" in out.splitlines()[-1]
    assert out.count("exercises: 0/") == len(LESSONS)
    assert "next: " in out


@pytest.mark.parametrize("lesson", LESSONS)
def test_solutions_mode_passes_every_exercise_test(pytester, lesson):
    """--solutions: the reference implementation passes every exercise test of the lesson."""
    result = pytester.runpytest_inprocess(
        str(PACKAGE_ROOT / "lessons" / lesson), "-m", "exercise", "--solutions",
        "-p", "no:cacheprovider", f"--rootdir={PACKAGE_ROOT}", "-c",
        str(PACKAGE_ROOT / "pyproject.toml"))
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) > 0 and not outcomes.get("failed"), result.stdout.str()
