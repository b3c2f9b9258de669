"""SFT: MiniMind's assistant-only mask, masked_mean, padded batches, and the trainer's SFT path."""
from __future__ import annotations

import pytest
import torch

from minimind.checkpoint import load_checkpoint, read_checkpoint
from minimind.cli import main
from minimind.config import preset
from minimind.data import DataError
from minimind.dataset import IGNORE, TokenData, cached_token_file, encode_chat
from minimind.lora import load_adapter
from minimind.model import MiniMindForCausalLM
from minimind.sft import (
    SFTData,
    assistant_labels,
    chat_markers,
    complete,
    masked_mean,
    pad_batch,
    sft_loss,
)
from minimind.tasks import make_tasks, multi_turn
from minimind.tokenizer import BOS_ID, EOS_ID, PAD_ID, byte_tokenizer
from minimind.trainer import TrainConfig, train

from .helpers import small_corpus

TOK = byte_tokenizer()
START, END = chat_markers(TOK)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_mask_of_a_single_turn_is_pinned_exactly():
    """user "1+1=", assistant "2": only '2', <|im_end|> and '\\n' of the answer are labelled."""
    msgs = [{"role": "user", "content": "1+1="}, {"role": "assistant", "content": "2"}]
    ids, _ = encode_chat(TOK, msgs)
    labels = assistant_labels(torch.tensor(ids), START, END).tolist()
    # <|im_start|> u s e r \n 1 + 1 = <|im_end|> \n: 12 tokens; <|im_start|> assistant \n: 11
    first = 12 + 11
    assert [i for i, lab in enumerate(labels) if lab != IGNORE] == [first, first + 1, first + 2]
    assert [labels[i] for i in (first, first + 1, first + 2)] == [TOK.encode("2")[0], EOS_ID,
                                                                 TOK.encode("\n")[0]]
    assert len(ids) == first + 3


def test_assistant_labels_agree_with_encode_chat_on_multi_turn_conversations():
    """Pattern search over the whole ids gives the labels of piece-by-piece encoding."""
    for n in (1, 2, 4):
        for system in (None, "answer briefly"):
            rec = multi_turn(make_tasks(["addition", "reverse", "countdown"], n, seed=n),
                             system=system)
            ids, labels = encode_chat(TOK, rec["conversations"])
            assert assistant_labels(torch.tensor(ids), START, END).tolist() == labels
            spans = sum(1 for a, b in zip([IGNORE] + labels, labels)
                        if a == IGNORE and b != IGNORE)
            assert spans == n  # every assistant turn supervised, each as one span


def test_a_truncated_answer_is_supervised_to_the_end():
    """An assistant span without its closing marker runs to the last token."""
    ids = [BOS_ID, *TOK.encode("assistant\nabc")]
    labels = assistant_labels(torch.tensor(ids), START, END).tolist()
    assert labels[-3:] == TOK.encode("abc") and labels[:-3] == [IGNORE] * (len(ids) - 3)
    with pytest.raises(ValueError, match="non-empty"):
        assistant_labels(torch.tensor(ids), [], END)


def test_masked_mean_counts_only_masked_entries():
    """The mean over true entries; over a dim; 0 (not NaN) for an all-false mask."""
    v = torch.tensor([[1.0, 2.0, 30.0], [4.0, 50.0, 6.0]])
    m = torch.tensor([[True, True, False], [True, False, True]])
    torch.testing.assert_close(masked_mean(v, m), torch.tensor(13 / 4))
    torch.testing.assert_close(masked_mean(v, m, dim=1), torch.tensor([1.5, 5.0]))
    torch.testing.assert_close(masked_mean(v, m, dim=0), torch.tensor([2.5, 2.0, 6.0]))
    assert masked_mean(v, torch.zeros_like(m)).item() == 0.0
    with pytest.raises(ValueError, match="shape"):
        masked_mean(v, m[0])


def test_sft_loss_equals_cross_entropy_over_supervised_positions():
    """sft_loss is PyTorch's cross-entropy with ignore_index -100."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=g)
    y = torch.tensor([[IGNORE, 3, 4, IGNORE, IGNORE], [1, IGNORE, IGNORE, 6, 0]])
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 7), y.reshape(-1))
    torch.testing.assert_close(sft_loss(logits, y), expected, atol=1e-6, rtol=1e-6)


def test_pad_batch_shifts_and_pads():
    """x = ids[:-1], y = labels[1:], padding with pad_id and label -100 (or pad_label)."""
    pairs = [([1, 5, 6, 2], [IGNORE, 5, 6, 2]), ([1, 7], [IGNORE, 7])]
    x, y = pad_batch(pairs)
    assert x.tolist() == [[1, 5, 6], [1, 7, PAD_ID]]
    assert y.tolist() == [[5, 6, 2], [7, IGNORE, IGNORE]]
    _, y_pad = pad_batch(pairs, pad_label=PAD_ID)
    assert y_pad.tolist()[1] == [7, PAD_ID, PAD_ID]
    x3, y3 = pad_batch(pairs, length=3)
    assert x3.shape == y3.shape == (2, 2)
    with pytest.raises(ValueError, match="differ in length"):
        pad_batch([([1, 2], [1])])


def test_sft_data_refuses_too_little_data():
    """One conversation leaves no validation split; the error says so."""
    data = SFTData.from_records([t.to_sft() for t in make_tasks("addition", 1)], TOK)
    with pytest.raises(DataError, match="split is empty"):
        data.check(64)
    data = SFTData.from_records([t.to_sft() for t in make_tasks("addition", 20)], TOK)
    with pytest.raises(DataError, match="no assistant token"):
        data.check(4)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny model with the byte-level tokenizer, pretrained a few steps through the trainer."""
    tmp = tmp_path_factory.mktemp("sft")
    src, _, _ = small_corpus(tmp)
    data = TokenData.open(cached_token_file(src, TOK, tmp / "cache"))
    cfg = TrainConfig(steps=4, batch_size=4, seq_len=32, warmup=0, eval_batches=1,
                      save_every=0, eval_every=0, seed=0)
    torch.set_num_threads(1)
    train(preset("tiny", vocab_size=TOK.vocab_size), cfg, data, tmp / "base.pt", TOK,
          progress=False, metrics=False, plot=False)
    return tmp / "base.pt"


def test_the_trainer_fine_tunes_from_the_pretrained_weights(base, tmp_path):
    """train(init=...) starts from the given weights, learns only assistant tokens, says 'sft'."""
    state = read_checkpoint(base)
    data = SFTData.from_records([t.to_sft() for t in make_tasks("addition", 40)], TOK)
    cfg = TrainConfig(steps=1, batch_size=4, seq_len=32, lr=1e-9, warmup=0, eval_batches=1,
                      save_every=0, seed=0)
    config = preset("tiny", vocab_size=TOK.vocab_size)
    result = train(config, cfg, data, tmp_path / "sft.pt", TOK, init=state["model"],
                   stage="sft", progress=False, metrics=False, plot=False)
    out = read_checkpoint(result.checkpoint)
    assert out["extra"]["stage"] == "sft"
    for k, v in state["model"].items():  # lr 1e-9: one step barely moves the init
        torch.testing.assert_close(out["model"][k], v, atol=1e-6, rtol=0)


def test_minimind_sft_trains_on_tasks_and_resumes(base, tmp_path):
    """`minimind sft --init` trains on tasks:addition; --resume continues to more steps."""
    out = tmp_path / "sft.pt"
    common = ["--data", "tasks:addition", "--examples", "50", "--batch-size", "4",
              "--eval-batches", "1", "--threads", "1", "--no-progress", "--out", str(out)]
    assert main(["sft", "--init", str(base), "--steps", "2", "--seq-len", "32", *common]) == 0
    assert main(["sft", "--resume", "--steps", "3", *common]) == 0
    assert read_checkpoint(out)["step"] == 3
    assert main(["sft", "--steps", "2", *common[:-1], str(tmp_path / "x.pt")]) == 2  # no init


def test_minimind_sft_lora_trains_only_adapters_and_resumes_exactly(base, tmp_path):
    """`sft --lora 4`: the base weights stay put, a run stopped and resumed ends bit-identical
    to an uninterrupted one, the checkpoint loads merged, and OUT.lora.pt is the adapter."""
    common = ["--data", "tasks:addition", "--examples", "50", "--batch-size", "4",
              "--eval-batches", "1", "--threads", "1", "--no-progress", "--lr", "1e-2"]
    straight, stopped = tmp_path / "straight.pt", tmp_path / "stopped.pt"
    first = ["sft", "--init", str(base), "--lora", "4", "--seq-len", "32", *common]
    assert main([*first, "--steps", "3", "--out", str(straight)]) == 0
    assert main([*first, "--steps", "2", "--out", str(stopped)]) == 0
    assert main(["sft", "--resume", "--steps", "3", *common, "--out", str(stopped)]) == 0
    a, b = read_checkpoint(straight), read_checkpoint(stopped)
    assert a["extra"]["lora"] == {"rank": 4, "alpha": 4.0}
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), f"{k} differs after resuming"
    init = read_checkpoint(base)["model"]
    adapters = [k for k in a["model"] if k.endswith(".lora_B")]
    assert adapters and all(a["model"][k].abs().max() > 0 for k in adapters)
    for k, v in init.items():  # frozen: every base weight as pretrained
        assert torch.equal(a["model"][k], v), f"{k} moved under LoRA"

    merged, _ = load_checkpoint(straight)
    assert not any("lora" in k for k in merged.state_dict())
    plain, _ = load_checkpoint(base)
    load_adapter(plain, straight.with_suffix(".lora.pt"))
    x = torch.randint(3, TOK.vocab_size, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(merged(x).logits, plain(x).logits, atol=1e-5, rtol=0)
    assert main(["sft", "--init", str(base), "--lora", "-1", "--out", str(tmp_path / "n.pt"),
                 "--data", "tasks:addition"]) == 2


def test_complete_stops_after_im_end():
    """Greedy completion cuts each row after its first <|im_end|>, batched by prompt length."""
    torch.manual_seed(0)
    model = MiniMindForCausalLM(preset("tiny", vocab_size=TOK.vocab_size))
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[EOS_ID] = 0.0
    prompts = [t.prompt_messages() for t in make_tasks(["addition", "reverse"], 4, seed=0)]
    outs = complete(model, TOK, prompts, max_new_tokens=5, stop=False)
    assert all(len(o) == 5 for o in outs)
    bias = torch.zeros(TOK.vocab_size)
    bias[EOS_ID] = 10.0
    model.lm_head.register_forward_hook(lambda m, i, o: o + bias)
    assert complete(model, TOK, prompts, max_new_tokens=5) == [[EOS_ID]] * 4
