"""The quizzes: every lesson's quiz.toml is well formed, its answer key agrees with the code (the
computed answers are derived from the library when checked), `minimind quiz NN` checks answers
and explains them, and each README's Quiz section is the one generated from its quiz."""
import io
import math

import pytest

from minimind import cli
from minimind.course import quiz
from minimind.course.quiz import Question, QuizError

LESSONS = quiz.lesson_folders()
QUIZZES = quiz.quizzes()
QUESTIONS = [(z, q) for z in QUIZZES for q in z]
IDS = [f"{z.lesson}:{q.id}" for z, q in QUESTIONS]


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_every_lesson_has_a_quiz_with_questions_computed_from_the_code(path):
    """Every lesson has a quiz of at least five questions, two or more of them computed
    or verified from the code."""
    loaded = quiz.load_quiz(path)
    assert len(loaded.questions) >= 5
    assert sum(q.computed for q in loaded) >= 2


@pytest.mark.parametrize("lesson, question", QUESTIONS, ids=IDS)
def test_every_answer_key_agrees_with_the_code(lesson, question):
    """A computed answer is a finite number; a verified choice's key is the option the code
    gives; every key is accepted by its own checker and its explanation names no placeholder."""
    expected = question.expected()
    if question.kind == "choice":
        assert 0 <= expected < len(question.options)
        if question.verify is not None:
            assert question.verified_option() == question.answer, question.verify
        assert question.grade("abcdefghij"[expected], expected)
    else:
        assert math.isfinite(expected)
        assert question.grade(quiz.format_number(expected), expected)
        assert not question.grade(str(expected * 1.5 + 1), expected)
    assert "{" not in question.explain(expected)


def test_computed_answers_follow_the_code_when_it_changes(monkeypatch):
    """Changing the preset changes the tying question's answer: nothing is stored."""
    tying = next(q for z, q in QUESTIONS if q.id == "tying")
    before = tying.expected()
    from minimind import config

    small = dict(config.PRESETS["minimind2-small"], vocab_size=8000)
    monkeypatch.setitem(config.PRESETS, "minimind2-small", small)
    assert tying.expected() == 8000 * 512 != before


@pytest.mark.parametrize("path", [z.path.parent for z in QUIZZES],
                         ids=[z.lesson for z in QUIZZES])
def test_readme_quiz_section_is_generated_from_the_quiz_file(path):
    """Each README's `## Quiz` section is exactly what `python -m minimind.course.quiz --write`
    writes from its quiz.toml."""
    readme = (path / "README.md").read_text(encoding="utf-8")
    assert quiz.readme_with_quiz(readme, quiz.load_quiz(path)) == readme, \
        "stale Quiz section: run python -m minimind.course.quiz --write"


def test_minimind_quiz_with_right_answers_exits_0_and_explains_each(capsys):
    """`minimind quiz 06 --answers ...` with every answer right exits 0, printing each
    explanation with the computed number."""
    loaded = quiz.load_quiz(quiz.find_lesson("06"))
    answers = ";".join("abcdefghij"[q.expected()] if q.kind == "choice"
                       else quiz.format_number(q.expected()) for q in loaded)
    assert cli.main(["quiz", "06", "--answers", answers]) == 0
    out = capsys.readouterr().out
    assert f"{len(loaded.questions)} / {len(loaded.questions)} right." in out
    assert "3,276,800" in out and out.count("right.") == len(loaded.questions) + 1


def test_minimind_quiz_with_a_wrong_answer_exits_1_and_gives_the_answer(capsys):
    """A wrong answer is told the right one (and why); the exit status is 1."""
    assert cli.main(["quiz", "1", "--answers", "a;a;a;1;1;a"]) == 1
    out = capsys.readouterr().out
    assert "not quite: the answer is (b) the smallest ones, such as 8." in out
    assert "not quite: the answer is 17." in out


def test_quiz_in_the_terminal_asks_again_after_an_unreadable_answer():
    """Interactive: 'z' for a four-option question is refused and asked again."""
    loaded = quiz.load_quiz(quiz.find_lesson("01"))
    stdin = io.StringIO("z\nb\nb\nc\n17\n8704\nb\n")
    out = io.StringIO()
    assert quiz.run_quiz(loaded, stdin=stdin, out=out) == 0
    assert "answer with a letter a..d; try again" in out.getvalue()


def test_unknown_lesson_and_a_lesson_without_quiz_are_one_line_errors(capsys, tmp_path):
    """`minimind quiz 42` names the lessons there are; a malformed quiz says what is wrong."""
    assert cli.main(["quiz", "42"]) == 2
    assert "error: no lesson '42'; the lessons are: 01_normalization" in capsys.readouterr().err
    bad = tmp_path / "quiz.toml"
    bad.write_text('[[question]]\nid = "x"\ntext = "t"\nexplanation = "e"\n'
                   'options = ["a", "b"]\nanswer = 5\n', encoding="utf-8")
    with pytest.raises(QuizError, match="question 1: 'answer' must be the index"):
        quiz.load_quiz(bad)


@pytest.mark.parametrize("text, value", [("3,276,800", 3276800), ("3 276 800", 3276800),
                                         ("1e-4", 1e-4), ("25%", 0.25), ("-2", -2)])
def test_numbers_are_read_the_way_people_write_them(text, value):
    """Thousands separators, exponents and percentages are understood."""
    assert quiz.parse_number(text) == pytest.approx(value)


def test_a_number_question_accepts_answers_within_its_tolerance():
    """With tolerance 1e-3, 40890 matches 40889.94; 41000 does not."""
    q = Question(id="t", kind="number", text="t", explanation="e", answer=40889.94,
                 tolerance=1e-3)
    assert q.grade("40890") and q.grade("40,889.9") and not q.grade("41000")
