"""Exercise tests for lesson 10: each passes on a right answer and names the mistake otherwise."""
import pytest
import torch

from minimind.course import check_close
from minimind.dataset import IGNORE, encode_chat
from minimind.sft import chat_markers
from minimind.tasks import make_tasks, multi_turn
from minimind.tokenizer import BOS_ID, byte_tokenizer

TOK = byte_tokenizer()
START, END = chat_markers(TOK)


def _conversation(messages):
    """(ids tensor, the labels MiniMind's rule gives, from piece-by-piece encoding)."""
    ids, labels = encode_chat(TOK, messages)
    return torch.tensor(ids), torch.tensor(labels)


SINGLE = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "12+34="},
          {"role": "assistant", "content": "46"}]


@pytest.mark.exercise("assistant_labels")
def test_assistant_labels_supervise_the_answer_and_its_closing_marker(impl):
    """Single turn: exactly the answer's tokens, <|im_end|> and its newline are labelled."""
    ids, expected = _conversation(SINGLE)
    check_close(impl.assistant_labels(ids, START, END), expected, atol=0, rtol=0,
                what="labels")


@pytest.mark.exercise("assistant_labels")
def test_assistant_label_positions_are_pinned_for_a_tiny_example(impl):
    """user '1+1=', assistant '2': positions 23, 24, 25 ('2', <|im_end|>, newline) and no other."""
    ids, _ = _conversation([{"role": "user", "content": "1+1="},
                            {"role": "assistant", "content": "2"}])
    labels = impl.assistant_labels(ids, START, END)
    expected = torch.full_like(ids, IGNORE)
    expected[23:26] = ids[23:26]  # 12 tokens of user turn + 11 of <|im_start|>assistant\n
    check_close(labels, expected, atol=0, rtol=0, what="labels")


@pytest.mark.exercise("assistant_labels")
def test_every_assistant_turn_of_a_multi_turn_conversation_is_supervised(impl):
    """Three question/answer turns after a system prompt: three supervised spans."""
    record = multi_turn(make_tasks(["addition", "countdown", "addition"], 3, seed=0),
                        system="answer briefly")
    ids, expected = _conversation(record["conversations"])
    check_close(impl.assistant_labels(ids, START, END), expected, atol=0, rtol=0,
                what="labels")


@pytest.mark.exercise("assistant_labels")
def test_an_answer_cut_off_by_truncation_is_supervised_to_the_end(impl):
    """The conversation cut inside its last answer: that answer is labelled up to the cut."""
    # three turns: losing only the open last answer differs from losing every turn after the first
    record = multi_turn(make_tasks(["addition", "countdown"], 3, seed=1))
    ids, labels = _conversation(record["conversations"])
    cut = len(ids) - 2  # the last answer kept whole, its <|im_end|>\n cut off
    check_close(impl.assistant_labels(ids[:cut], START, END), labels[:cut], atol=0, rtol=0,
                what="labels")


@pytest.mark.exercise("assistant_labels")
def test_a_conversation_without_an_answer_has_no_labels(impl):
    """Only system and user turns: every label is -100."""
    ids, _ = _conversation(SINGLE[:2])
    check_close(impl.assistant_labels(ids, START, END), torch.full_like(ids, IGNORE), atol=0,
                rtol=0, what="labels")


@pytest.mark.exercise("assistant_labels")
def test_assistant_labels_refuse_empty_markers(impl):
    """An empty start or end marker is a ValueError, not an infinite loop or a silent mask."""
    ids, _ = _conversation(SINGLE)
    with pytest.raises(ValueError):
        impl.assistant_labels(ids, [], END)
    with pytest.raises(ValueError):
        impl.assistant_labels(ids, START, [])


@pytest.mark.exercise("assistant_labels")
def test_assistant_labels_match_minimind_on_random_conversations(impl):
    """1 to 4 turns of random tasks, with or without a system prompt, on 16 seeds."""
    for seed in range(16):
        turns, system = 1 + seed % 4, seed % 3 == 0
        tasks = make_tasks(["addition", "countdown"], turns, seed=seed)
        ids, expected = _conversation(multi_turn(tasks, "be brief" if system else None)
                                      ["conversations"])
        assert int(ids[0]) == BOS_ID
        check_close(impl.assistant_labels(ids, START, END), expected, atol=0, rtol=0,
                    what=f"labels (seed {seed}, {turns} turns)")


VALUES = torch.tensor([[1.0, 2.0, 30.0, 4.0], [5.0, 60.0, 7.0, 80.0]])
MASK = torch.tensor([[True, True, False, True], [True, False, False, False]])


@pytest.mark.exercise("masked_mean")
def test_masked_mean_averages_only_the_true_entries(impl):
    """(1 + 2 + 4 + 5) / 4 = 3: masked-out entries count in neither the sum nor the count."""
    check_close(impl.masked_mean(VALUES, MASK), torch.tensor(3.0), atol=1e-6, rtol=1e-6,
                what="mean")


@pytest.mark.exercise("masked_mean")
def test_masked_mean_along_a_dim(impl):
    """Per row: (1 + 2 + 4) / 3 and 5 / 1; per column: 3, 2, 0 (nothing), 4."""
    check_close(impl.masked_mean(VALUES, MASK, dim=1), torch.tensor([7 / 3, 5.0]), atol=1e-6,
                rtol=1e-6, what="row means")
    check_close(impl.masked_mean(VALUES, MASK, dim=0), torch.tensor([3.0, 2.0, 0.0, 4.0]),
                atol=1e-6, rtol=1e-6, what="column means")


@pytest.mark.exercise("masked_mean")
def test_masked_mean_over_nothing_is_zero(impl):
    """An all-False mask (a batch whose answers were all cut off) gives 0, not NaN."""
    check_close(impl.masked_mean(VALUES, torch.zeros_like(MASK)), torch.tensor(0.0), atol=0,
                rtol=0, what="mean")


@pytest.mark.exercise("masked_mean")
def test_masked_mean_refuses_a_mask_of_another_shape(impl):
    """A mask that would broadcast is a ValueError."""
    with pytest.raises(ValueError):
        impl.masked_mean(VALUES, MASK[0])


@pytest.mark.exercise("masked_mean")
def test_masked_mean_equals_the_mean_of_the_selected_entries(impl):
    """For random values and masks on 20 seeds: values[mask].mean()."""
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        values = torch.randn(3, 5, generator=g, dtype=torch.float64)
        mask = torch.rand(3, 5, generator=g) < 0.5
        mask[seed % 3, seed % 5] = True
        check_close(impl.masked_mean(values, mask), values[mask].mean(), atol=1e-12,
                    rtol=1e-12, what=f"mean (seed {seed})")
