"""Exercise tests have teeth: every plausible wrong version under tests/mutants is caught."""
from collections import defaultdict

import pytest

from minimind.course import Lesson, lesson_dirs
from tests.course_run import ROOT, run_course

MUTANTS = ROOT / "tests" / "mutants"
MIN_MUTANTS_PER_EXERCISE = 3


def _lessons_with_mutants():
    return [d.name for d in lesson_dirs()]


@pytest.mark.parametrize("lesson", _lessons_with_mutants())
def test_every_mutant_is_caught_by_a_failing_exercise_test(lesson):
    """Run the lesson's exercise tests against each wrong version: every one fails a test."""
    mutants_file = MUTANTS / f"{lesson}.py"
    assert mutants_file.is_file(), f"{lesson} has no wrong versions at {mutants_file}"
    outcomes, output = run_course(f"lessons/{lesson}", "-m", "exercise",
                                  "--mutants", str(mutants_file))
    by_mutant = defaultdict(list)
    for o in outcomes:
        by_mutant[o["mutant"]].append(o)
    assert by_mutant, f"no test ran against a mutant:\n{output[-2000:]}"
    escaped = [m for m, runs in by_mutant.items()
               if not any(o["outcome"] == "failed" for o in runs)]
    assert not escaped, f"wrong versions that every test accepts: {escaped}"
    errored = [(o["nodeid"]) for o in outcomes if o["outcome"] == "error"]
    assert not errored, f"tests that errored instead of failing: {errored}"


@pytest.mark.parametrize("lesson", _lessons_with_mutants())
def test_every_exercise_has_at_least_three_wrong_versions(lesson):
    """Each exercise function is guarded by at least three plausible wrong versions."""
    from minimind.course import import_file, mutants_in

    module = import_file(MUTANTS / f"{lesson}.py", f"_count_mutants_{lesson}")
    counts = defaultdict(int)
    for m in mutants_in(module):
        counts[m.exercise] += 1
    exercises = [s.name for s in Lesson.from_dir(ROOT / "lessons" / lesson).exercises]
    thin = {e: counts[e] for e in exercises if counts[e] < MIN_MUTANTS_PER_EXERCISE}
    assert not thin, f"exercises with fewer than {MIN_MUTANTS_PER_EXERCISE} wrong versions: {thin}"
