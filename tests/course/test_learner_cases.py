"""Whatever a learner does to exercises.py, the course answers clearly and keeps running.

Each test copies lessons into a pytester folder, writes a learner's exercises.py, and runs the
course plugin in this process, as `pytest lessons` would.
"""
import re
import textwrap

import pytest

from minimind.course.lessons import PACKAGE_ROOT, pristine_stub

LESSONS = PACKAGE_ROOT / "lessons"

NORM = "01_normalization"
RESIDUAL = "05_residual"


def _broken_stub() -> str:
    """Lesson 01's shipped stub with its first `raise` turned into a syntax error."""
    return pristine_stub(LESSONS / NORM).replace(
        "    raise NotImplementedError\n", "    return x +\n", 1)


def _learner(body: str) -> str:
    """A lesson-01 exercises.py whose functions are the given source."""
    return "import torch\nfrom torch import Tensor, nn\n\n" + textwrap.dedent(body)


RIGHT = """
    def rms_norm(x, weight, eps=1e-5):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps) * weight).to(x.dtype)

    def layer_norm(x, weight, bias, eps=1e-5):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + eps) * weight + bias

    def pre_norm_residual(x, sublayer, norm):
        return x + sublayer(norm(x))

    def post_norm_residual(x, sublayer, norm):
        return norm(x + sublayer(x))
"""


def test_a_syntax_error_is_reported_per_lesson_and_other_lessons_still_run(
    copy_lesson, run_course, outcomes_of
):
    """A lesson whose exercises.py does not parse is reported as not importing, with the line;
    the run does not crash and the other lessons' exercises are still reported."""
    broken = _broken_stub()
    line = broken.splitlines().index("    return x +") + 1
    copy_lesson(NORM, broken)
    copy_lesson(RESIDUAL)
    result = run_course("lessons", "-m", "exercise")
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines([f"*does not import: SyntaxError at exercises.py:{line}*"])
    seen = outcomes_of(result)
    assert all(o == "skipped" for o in seen.values())
    assert any(RESIDUAL in nodeid for nodeid in seen), "the other lesson did not run"
    result.stdout.fnmatch_lines(["*05_residual*", "*exercises: 0/2 done*"])


def test_progress_command_survives_a_syntax_error(pytester, copy_lesson):
    """`minimind progress` reports the broken lesson and every other lesson's progress."""
    from minimind.course.progress import run_progress

    broken = _broken_stub()
    copy_lesson(NORM, broken)
    copy_lesson(RESIDUAL)
    assert run_progress(pytester.path) == 0


def test_an_endless_loop_fails_naming_the_function_and_the_limit(copy_lesson, run_course):
    """A learner function that never returns fails its test after the time limit, and the
    message names the function, where it is, and the limit."""
    copy_lesson(NORM, _learner(RIGHT.replace(
        "return x + sublayer(norm(x))", "while True:\n            pass")))
    result = run_course(f"lessons/{NORM}", "-m", "exercise",
                        "--exercise-timeout", "0.5")
    result.stdout.fnmatch_lines([
        "*pre_norm_residual (lessons/01_normalization/exercises.py:*) did not return within "
        "the 0.5 s limit*"])
    assert result.ret == 1


def test_changing_the_input_in_place_is_named_not_reported_as_a_wrong_value(
    copy_lesson, run_course
):
    """A function that writes into its input tensor is told so, not shown a wrong 'expected'."""
    copy_lesson(NORM, _learner(RIGHT.replace(
        "mean = x.mean(-1, keepdim=True)\n", "x -= x.mean(-1, keepdim=True)\n        mean = 0\n")))
    result = run_course(f"lessons/{NORM}", "-m", "exercise")
    out = result.stdout.str()
    assert "layer_norm changed its input 'x' in place" in out
    assert "largest difference" not in out.split("layer_norm changed")[0].split("___")[-1]


def test_a_helper_function_is_not_counted_as_an_exercise(copy_lesson, run_course):
    """Public helpers in exercises.py are the learner's business: progress counts exercises."""
    copy_lesson(NORM, _learner(RIGHT + """
    def mean_square(x):
        return x.pow(2).mean(-1, keepdim=True)
    """))
    result = run_course(f"lessons/{NORM}", "-m", "exercise")
    result.stdout.fnmatch_lines(["*exercises: 4/4 done*"])
    assert "mean_square" not in result.stdout.str()


def test_impl_mode_points_at_the_file_the_learner_named(copy_lesson, run_course, tmp_path):
    """With --impl FILE the progress table and 'next' point into FILE, at the function."""
    copy_lesson(NORM)
    mine = tmp_path / "my_answers.py"
    mine.write_text(_learner(RIGHT.split("    def layer_norm")[0]))
    result = run_course(f"lessons/{NORM}", "-m", "exercise", "--impl", str(mine))
    out = result.stdout.str()
    assert re.search(r"rms_norm +done +\S*my_answers\.py:\d+", out), out[-2000:]
    assert "next: layer_norm at " in out and "exercises.py" not in out.split("next:")[1]


def test_a_finished_learner_keeps_the_shipped_stub_checks_green(tmp_path):
    """The suite's stub checks read the shipped stub back from git, not the learner's work."""
    import subprocess

    from minimind.course.lessons import git_blob_id

    lesson = tmp_path / "lessons" / NORM
    lesson.mkdir(parents=True)
    shipped = pristine_stub(LESSONS / NORM)
    (lesson / "exercises.py").write_text(shipped, encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "stubs"], cwd=tmp_path, check=True)
    (lesson / "exercises.py").write_text(_learner(RIGHT), encoding="utf-8")
    subprocess.run([*git, "commit", "-qam", "my answers"], cwd=tmp_path, check=True)
    manifest = {NORM: git_blob_id(shipped.encode("utf-8"))}
    assert pristine_stub(lesson, manifest) == shipped


def test_a_failing_exercise_shows_a_short_diagnosis_and_never_the_reference(
    copy_lesson, run_course
):
    """A wrong answer's failure is a few lines: what the test checks, the largest difference,
    the matched mistake and its hint; no test source, reference formula or fixture dump."""
    wrong = RIGHT.replace("var = x.var(-1, keepdim=True, unbiased=False)",
                          "var = x.var(-1, keepdim=True)")
    copy_lesson(NORM, _learner(wrong))
    result = run_course(f"lessons/{NORM}", "-m", "exercise",
                        "-k", "test_layer_norm_matches_reference")
    out = result.stdout.str()
    section = out.split("test_layer_norm_matches_reference ___")[1].split("=====")[0]
    lines = [line for line in section.strip().splitlines() if line.strip()]
    assert len(lines) <= 6, section
    assert "this matches a known mistake: unbiased variance" in section
    for leak in ("check_close(", "torch.sqrt(var + eps)", "Implementation(", "def test_"):
        assert leak not in section, f"the failure shows {leak!r}:\n{section}"


def test_the_hint_comes_from_the_matched_mistake(copy_lesson, run_course):
    """RMSNorm with the mean subtracted is named as that mistake, with that mistake's hint, and
    not given an unrelated hint about dtypes."""
    wrong = RIGHT.replace(
        "x32 = x.float()\n", "x32 = x.float()\n        x32 = x32 - x32.mean(-1, keepdim=True)\n", 1)
    copy_lesson(NORM, _learner(wrong))
    result = run_course(f"lessons/{NORM}", "-m", "exercise",
                        "-k", "test_rms_norm_matches_reference")
    out = result.stdout.str()
    assert "this matches a known mistake: mean subtracted (that is LayerNorm)" in out
    assert "hint: RMSNorm does not centre" in out
    assert "float32" not in out.split("test_rms_norm_matches_reference ___")[1]


def test_an_unknown_wrong_answer_gets_a_neutral_hint(copy_lesson, run_course):
    """When no known mistake matches, the hint says where to look without guessing a cause."""
    copy_lesson(NORM, _learner(RIGHT.replace(
        "return norm(x + sublayer(x))", "return 0.5 * norm(x + sublayer(x))")))
    result = run_course(f"lessons/{NORM}", "-m", "exercise",
                        "-k", "post_norm")
    out = result.stdout.str()
    assert "no known mistake gives this output" in out
    assert "known mistake:" not in out.replace("no known mistake", "")


@pytest.mark.parametrize("raise_in", ["rms_norm"])
def test_an_exception_in_learner_code_shows_only_the_learners_frames(
    copy_lesson, run_course, raise_in
):
    """A learner function that raises shows the learner's own lines and the error, nothing of
    the course's machinery."""
    copy_lesson(NORM, _learner(RIGHT.replace(
        "x32 = x.float()\n", "x32 = x.flaot()\n", 1)))
    result = run_course(f"lessons/{NORM}", "-m", "exercise", "-k", raise_in)
    out = result.stdout.str()
    assert "your code raised:" in out and "x.flaot()" in out and "AttributeError" in out
    assert "implementations.py" not in out and "plugin.py" not in out
