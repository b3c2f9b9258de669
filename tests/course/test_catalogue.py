"""The catalogue of mistakes gives the exercise tests teeth: every exercise has several known
wrong versions, every wrong version fails a test, and the diagnosis names it."""
from collections import defaultdict

import pytest

from minimind.course.lessons import PACKAGE_ROOT, lesson_dirs
from minimind.course.mistakes import catalogue

LESSONS = [p.name for p in lesson_dirs(PACKAGE_ROOT / "lessons")]
MIN_MISTAKES_PER_EXERCISE = 3


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_exercise_has_at_least_three_known_wrong_versions(lesson):
    """Each exercise is guarded by at least three plausible wrong versions, each with a hint."""
    known = catalogue(lesson)
    assert known is not None, f"{lesson} has no catalogue module"
    counts = defaultdict(int)
    for m in known.mistakes:
        counts[m.exercise] += 1
        assert m.hint.strip() and m.description.strip(), f"{m.id} needs a description and hint"
    thin = {e: counts[e] for e in known.exercises if counts[e] < MIN_MISTAKES_PER_EXERCISE}
    assert not thin, f"exercises with fewer than {MIN_MISTAKES_PER_EXERCISE} wrong versions: {thin}"


def _not_a_returned_value(failure: str) -> bool:
    """A failure about an exception, a missing exception, a shape or dtype, or a quantity derived
    from the output (a gradient, a row mean): no output value of a wrong version can match it."""
    last = failure.strip().splitlines()[-1] if failure.strip() else ""
    return ("shape found" in failure or "dtype found" in failure or "DID NOT RAISE" in failure
            or "Error" in last or "Error:" in failure
            or ("returned a wrong" not in failure and " is wrong:" in failure))


def _mistakes_run(pytester, lesson):
    result = pytester.runpytest_inprocess(
        str(PACKAGE_ROOT / "lessons" / lesson), "-m", "exercise", "--mistakes",
        # A generous limit: on a loaded machine a slow wrong version must fail on its answer,
        # not on the learner's 10 s time-out (which names no mistake).
        "--exercise-timeout", "120", "-p", "no:cacheprovider", f"--rootdir={PACKAGE_ROOT}", "-c",
        str(PACKAGE_ROOT / "pyproject.toml"))
    reports = [r for r in result.reprec.getreports("pytest_runtest_logreport")
               if r.when == "call" or r.outcome != "passed"]
    return result, reports


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_known_mistake_fails_an_exercise_test_that_names_it(pytester, lesson):
    """Run each exercise test against each wrong version: every one fails some test, none
    errors, and for each the failing tests' diagnosis names that very mistake (or the failure
    is about an exception, a shape or dtype, or a derived quantity, where no output can match)."""
    known = catalogue(lesson)
    result, reports = _mistakes_run(pytester, lesson)
    by_mistake = defaultdict(list)
    ids = {m.id for m in known.mistakes}
    for r in reports:
        params = r.nodeid.rsplit("[", 1)[-1].rstrip("]").split("-")
        for part in ids.intersection(params):
            by_mistake[part].append(r)
    assert by_mistake, result.stdout.str()[-2000:]
    escaped = [m.id for m in known.mistakes if not any(r.failed for r in by_mistake[m.id])]
    assert not escaped, f"wrong versions that every test accepts: {escaped}"
    errored = [r.nodeid for r in reports if r.failed and r.when != "call"]
    assert not errored, f"tests that errored instead of failing: {errored}"
    unnamed = []
    for m in known.mistakes:
        texts = [str(r.longrepr) for r in by_mistake[m.id] if r.failed]
        if any(f"known mistake: {m.description}" in t for t in texts):
            continue
        if all(_not_a_returned_value(t) for t in texts):
            continue
        unnamed.append(m.id)
    assert not unnamed, f"failing tests do not name these mistakes: {unnamed}"


def test_the_tiled_attention_denominator_mistake_is_named():
    """Not rescaling the running denominator of tiled attention is a catalogued mistake."""
    known = catalogue("03_attention")
    assert any("denominator" in m.description for m in known.of("tiled_attention"))
