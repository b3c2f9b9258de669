"""Learner mode reports untouched stubs as not started, and --impl mixes written and unwritten."""
import textwrap

from minimind.course import Lesson, lesson_dirs
from tests.course_run import run_course


def test_untouched_stubs_are_all_reported_not_started():
    """On the stubs as shipped every exercise test is 'not started': none passes, fails, errors."""
    outcomes, output = run_course("lessons", "-m", "exercise")
    assert outcomes, "no exercise tests were collected"
    wrong = [(o["nodeid"], o["outcome"]) for o in outcomes if o["outcome"] != "not started"]
    assert not wrong, f"tests not reported as not started: {wrong}"
    for d in lesson_dirs():
        lesson = Lesson.from_dir(d)
        for stub in lesson.exercises:
            assert lesson.where(stub.name) in output, f"summary does not point at {stub.name}"


def test_impl_file_runs_defined_functions_and_reports_the_rest_not_started(tmp_path):
    """--impl FILE: functions the file defines are tested; the missing ones are not started."""
    module = tmp_path / "mine.py"
    module.write_text(textwrap.dedent("""
        from minimind.norm import rms_norm  # a right answer
        def layer_norm(x, weight, bias, eps=1e-5):  # a wrong one: forgets the bias
            from minimind.norm import layer_norm as ref
            return ref(x, weight, bias * 0, eps)
    """))
    outcomes, output = run_course("lessons/01_normalization", "-m", "exercise",
                                  "--impl", str(module))
    by_exercise = {}
    for o in outcomes:
        for name in o["exercises"]:
            by_exercise.setdefault(name, set()).add(o["outcome"])
    assert by_exercise["rms_norm"] == {"passed"}, output[-2000:]
    assert "failed" in by_exercise["layer_norm"], output[-2000:]
    assert by_exercise["pre_norm_residual"] == {"not started"}
    assert "exercises: 1/4 done" in output


def test_solutions_mode_passes_every_exercise_test():
    """--solutions: the reference implementation passes every exercise test of every lesson."""
    outcomes, output = run_course("lessons", "-m", "exercise", "--solutions")
    assert outcomes
    bad = [(o["nodeid"], o["outcome"]) for o in outcomes if o["outcome"] != "passed"]
    assert not bad, f"reference fails its own exercise tests: {bad}\n{output[-3000:]}"
