"""Chat tasks: deterministic from a seed, exact answers their verifiers score 1, wrong ones less."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minimind.dataset import encode_chat
from minimind.tasks import (
    FORMAT_CREDIT,
    KINDS,
    TaskError,
    eval_arithmetic,
    make_preferences,
    make_tasks,
    multi_turn,
    speeches,
)
from minimind.tokenizer import byte_tokenizer, render_chat


def test_tasks_are_the_same_for_the_same_seed_and_differ_across_seeds():
    """make_tasks is a pure function of (kind, n, seed)."""
    assert make_tasks(KINDS, 21, seed=3) == make_tasks(KINDS, 21, seed=3)
    assert make_tasks(KINDS, 21, seed=3) != make_tasks(KINDS, 21, seed=4)


@pytest.mark.parametrize("kind", KINDS)
def test_every_task_scores_its_own_answer_one(kind):
    """The reference answer earns reward 1, with or without the closing <|im_end|>."""
    for t in make_tasks(kind, 30, seed=1):
        assert t.reward(t.answer) == 1.0
        assert t.reward(f" {t.answer}<|im_end|>\nrubbish") == 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_every_rejected_answer_scores_below_the_chosen_one(kind):
    """Preference pairs: same prompt, the chosen answer right, the rejected one wrong."""
    tasks = make_tasks(kind, 30, seed=2)
    for t, pair in zip(tasks, make_preferences(kind, 30, seed=2)):
        assert pair["chosen"][:-1] == pair["rejected"][:-1]
        assert pair["chosen"][-1]["content"] == t.answer
        assert t.reward(pair["rejected"][-1]["content"]) < 1.0


def test_partial_credit_follows_tinyzero():
    """1 right, FORMAT_CREDIT well-formed but wrong, 0 for no answer of the right form."""
    add = make_tasks("addition", 1, seed=0)[0]
    wrong = str(int(add.answer) + 1)
    assert (add.reward(add.answer), add.reward(wrong), add.reward("many")) == \
        (1.0, FORMAT_CREDIT, 0.0)
    rev = make_tasks("reverse", 1, seed=0)[0]
    assert rev.reward("zzz") == FORMAT_CREDIT and rev.reward("12") == 0.0
    cont = make_tasks("continue", 1, seed=0)[0]
    first = cont.answer.split()[0]
    assert 0 < cont.reward(first) < 1


def test_countdown_accepts_any_right_expression_and_rejects_code():
    """Another expression reaching the target scores 1; reused numbers and names do not."""
    t = make_tasks("countdown", 1, seed=5)[0]
    a, b, c = t.numbers
    assert t.reward(t.answer) == 1.0
    assert t.target is not None and t.target > 0
    assert t.reward(f"{a}+{a}+{a}+{a}") <= FORMAT_CREDIT or a == b == c  # reuses a number
    assert t.reward("__import__('os')") == 0.0
    with pytest.raises(ValueError, match="only integers"):
        eval_arithmetic("2**3")
    assert eval_arithmetic("(2+3)*4") == (20, [2, 3, 4])


def test_shakespeare_tasks_name_real_speakers_and_plays():
    """A speaker task's answer is the speaker of that line in that play."""
    for t in make_tasks(["speaker", "play"], 20, seed=0):
        line = t.prompt.split('"')[1]
        if t.kind == "speaker":
            assert any(s.speaker == t.answer and line in s.lines for s in speeches())
        else:
            assert any(s.play == t.answer and line in s.lines for s in speeches())


def test_rendering_is_minimind_chatml():
    """A task renders as <|im_start|>role\\ncontent<|im_end|>\\n per message."""
    t = make_tasks("addition", 1, seed=0)[0]
    text = render_chat(t.messages())
    assert text == (f"<|im_start|>user\n{t.prompt}<|im_end|>\n"
                    f"<|im_start|>assistant\n{t.answer}<|im_end|>\n")
    assert render_chat(t.prompt_messages(), add_generation_prompt=True).endswith(
        "<|im_start|>assistant\n")
    tok = byte_tokenizer()
    ids, _ = encode_chat(tok, t.messages())
    assert ids == tok.encode(text)  # piece by piece or whole: the same ids


def test_render_chat_matches_the_jinja_template():
    """render_chat gives what Hugging Face's chat template gives."""
    jinja2 = pytest.importorskip("jinja2")
    from minimind.tokenizer import CHAT_TEMPLATE

    msgs = multi_turn(make_tasks(["addition", "reverse"], 2, seed=0), system="be brief")
    msgs = msgs["conversations"]
    for gen in (False, True):
        expected = jinja2.Template(CHAT_TEMPLATE).render(messages=msgs,
                                                         add_generation_prompt=gen)
        assert render_chat(msgs, gen) == expected


def test_bad_requests_name_the_problem():
    """Unknown kinds and negative sizes raise TaskError saying so."""
    with pytest.raises(TaskError, match="unknown task kind"):
        make_tasks("poetry", 3)
    with pytest.raises(TaskError, match="n must be"):
        make_tasks("addition", -1)
    with pytest.raises(TaskError, match="at least one"):
        multi_turn([])


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_addition_answers_are_the_sum(seed, digits):
    """For any seed and width the answer is the sum of the prompt's operands."""
    t = make_tasks("addition", 1, seed=seed, digits=digits)[0]
    a, b = t.prompt.rstrip("=").split("+")
    assert len(a) == len(b) == digits or digits == 1
    assert int(t.answer) == int(a) + int(b)


def test_wrong_answers_are_deterministic():
    """Preference pairs depend only on the seed."""
    assert make_preferences(KINDS, 14, seed=9) == make_preferences(KINDS, 14, seed=9)
