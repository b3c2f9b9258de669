"""Claims of lesson 10: measured on fixed seeds; `python -m minimind.course.calibrate` checks
their margins over seeds 0..19, plain and perturbed.

One base model per seed: MiniMind at char-small size over the byte-level tokenizer (MiniMind's
three special tokens and 256 bytes), pretrained for a few seconds on speeches of the plays, each
wrapped as <|im_start|> speech <|im_end|>, as MiniMind formats pretraining documents. It is then
fine-tuned on one-digit addition in ChatML ("<|im_start|>user\\n3+5=<|im_end|>\\n
<|im_start|>assistant\\n8<|im_end|>\\n") three ways that differ in one thing: which positions
are targets.
"""
from __future__ import annotations

import copy

import pytest
import torch

from minimind.dataset import IGNORE, encode_chat
from minimind.lab import LineFigure, Table, threads
from minimind.lab.finetuning import SFT_SETTINGS, eos_rate, examples, finetune, pretrain_chat_base
from minimind.sft import accuracy, assistant_labels, chat_markers, complete, pad_batch, sft_loss
from minimind.tasks import make_tasks, multi_turn
from minimind.tokenizer import EOS_ID, PAD_ID, byte_tokenizer

TOK = byte_tokenizer()
TASK = dict(kind="addition", digits=1)
N_TRAIN, N_TEST = 2000, 200
NEW_TOKENS = 8  # a completion budget well past the longest answer ("18" + <|im_end|>)


def _tasks(n: int, seed: int):
    return make_tasks(TASK["kind"], n, seed=seed, digits=TASK["digits"])


@pytest.fixture(scope="module")
def runs(seed):
    """The base model and three fine-tunes of it: masked, unmasked, pads as targets."""
    base = pretrain_chat_base(seed)
    train = _tasks(N_TRAIN, 100 + seed)
    out = {"base": base}
    out["masked"] = finetune(copy.deepcopy(base.model), examples(train, "assistant"),
                             SFT_SETTINGS, seed, "assistant-only mask")
    out["unmasked"] = finetune(copy.deepcopy(base.model), examples(train, "none"),
                               SFT_SETTINGS, seed, "every token a target")
    out["pads"] = finetune(copy.deepcopy(base.model), examples(train, "assistant"),
                           SFT_SETTINGS, seed, "pads as targets", pad_label=PAD_ID)
    return out


def _answer_loss(model, tasks) -> float:
    """Mean cross-entropy on the answer tokens (and closing marker) of held-out tasks."""
    x, y = pad_batch([encode_chat(TOK, t.messages()) for t in tasks])
    with torch.no_grad(), threads(1):
        return sft_loss(model(x).logits, y).item()


@pytest.mark.claim
def test_masking_the_prompt_puts_the_learning_signal_on_answers(seed, claim, runs):
    """With the mask every target is an answer token; at equal steps it answers as well."""
    test = _tasks(N_TEST, 200 + seed)
    train = _tasks(N_TRAIN, 100 + seed)
    rows, acc, loss, share = [], {}, {}, {}
    for key in ("masked", "unmasked"):
        pairs = examples(train[:200], "assistant" if key == "masked" else "none")
        answer = sum(lab != IGNORE for _, lab in examples(train[:200], "assistant")
                     for lab in lab[1:])
        share[key] = answer / sum(lab != IGNORE for _, labels in pairs for lab in labels[1:])
        with threads(1):
            acc[key] = accuracy(runs[key].model, TOK, test, NEW_TOKENS)
        loss[key] = _answer_loss(runs[key].model, test)
        rows.append([runs[key].name, share[key], loss[key], acc[key]])
    claim.table(Table(
        f"one-digit addition after {SFT_SETTINGS.steps} steps, held-out (seed {seed})",
        ["targets", "answer share of targets", "answer loss", "accuracy (greedy)"], rows,
        note="answer share: answer tokens (with <|im_end|>\\n) over all targets in the data"))
    claim.figure("masked-vs-unmasked-loss", LineFigure(
        {runs[k].name: (range(1, len(runs[k].losses) + 1), runs[k].losses)
         for k in ("masked", "unmasked")},
        xlabel="step", ylabel="training loss (over its own targets)",
        title=f"SFT loss: answer tokens only vs every token (seed {seed})"))
    # Without the mask most targets are the template and the operands, not the answer.
    claim.check("unmasked: share of targets that are answer tokens", share["unmasked"], "<", 0.4)
    # A masked model that had learned nothing about the answers would measure about 0. Not
    # accuracy: after 200 steps it ranged from 0.07 to 0.28 on seed 0 plain and perturbed.
    base_loss = _answer_loss(runs["base"].model, test)
    claim.check("base minus masked answer loss", base_loss - loss["masked"], ">", 1.5)
    # The accuracy difference between the two is in the table, not asserted: its sign changes
    # from seed to seed (see the README).


@pytest.mark.claim
def test_training_on_pad_tokens_as_targets_teaches_the_model_to_emit_pads(seed, claim, runs):
    """Labels of padding left as pad ids: after its answer the model's probability of pad
    rises from under 0.01 to over 0.1."""
    test = _tasks(N_TEST, 200 + seed)
    prob = {}
    for key in ("masked", "pads"):
        model = runs[key].model
        pairs = [encode_chat(TOK, t.messages()) for t in test]
        x = torch.tensor([ids for ids, _ in pairs if len(ids) == len(pairs[0][0])])
        with torch.no_grad(), threads(1):
            logits = model(x).logits[:, -1]  # the position after the closing <|im_end|>\n
        prob[key] = torch.softmax(logits, -1)[:, PAD_ID].mean().item()
    with threads(1):
        cont = complete(runs["pads"].model, TOK, [t.prompt_messages() for t in test[:20]],
                        NEW_TOKENS, stop=False)
    pads_emitted = sum(c.count(PAD_ID) for c in cont) / len(cont)
    claim.table(Table(
        f"probability of <|endoftext|> (pad) right after the answer's <|im_end|>\\n (seed {seed})",
        ["padding labels", "P(pad)"],
        [["-100 (skipped)", prob["masked"]], ["pad id (learned)", prob["pads"]]],
        note=f"the pad-trained model, run {NEW_TOKENS} tokens without stopping, emitted "
             f"{pads_emitted:.1f} pads per completion"))
    # A model that had not learned pads from its padding would measure ~0 for both. Over 40
    # calibration runs the pad-trained P(pad) was above 0.97 in 34 and as low as 0.21 in one
    # (which rows of a batch get padding, and how much, is drawn by the seed), so the claim is
    # "by orders of magnitude", not "pad becomes the most likely token".
    claim.check("pads as targets: P(pad) after the answer", prob["pads"], ">", 0.1)
    claim.check("padding skipped: P(pad) after the answer", prob["masked"], "<", 0.01)


@pytest.mark.claim
def test_an_sft_model_stops_at_im_end_while_the_base_model_runs_on(seed, claim, runs):
    """Greedy completions: the fine-tuned model closes its answer, the base model does not."""
    test = _tasks(N_TEST, 200 + seed)[:50]
    prompts = [t.prompt_messages() for t in test]
    rate, sample = {}, {}
    for key in ("base", "masked"):
        with threads(1):
            outs = complete(runs[key].model, TOK, prompts, NEW_TOKENS)
        rate[key] = eos_rate(outs)
        sample[key] = TOK.decode(outs[0])
    claim.table(Table(
        f"share of {len(test)} greedy completions that emit <|im_end|> within {NEW_TOKENS} "
        f"tokens (seed {seed})", ["model", "stops", f"completion of {test[0].prompt!r}"],
        [["base (pretrained only)", rate["base"], repr(sample["base"])],
         ["after SFT", rate["masked"], repr(sample["masked"])]]))
    # A model that had not learned to close its turn would measure the base model's rate.
    claim.check("SFT model: share of completions that stop", rate["masked"], ">", 0.9)
    claim.check("base model: share of completions that stop", rate["base"], "<", 0.2)


@pytest.mark.claim
def test_the_mask_positions_are_pinned_for_single_and_multi_turn_examples(claim):
    """Which positions are targets, token by token: no off-by-one at either end of a span."""
    start, end = chat_markers(TOK)
    single = [{"role": "user", "content": "3+5="}, {"role": "assistant", "content": "8"}]
    ids, _ = encode_chat(TOK, single)
    labels = assistant_labels(torch.tensor(ids), start, end).tolist()
    shown = [[i, repr(TOK.decode([t])), "-100" if lab == IGNORE else repr(TOK.decode([lab]))]
             for i, (t, lab) in enumerate(zip(ids, labels)) if i >= 18]
    claim.table(Table("single turn: the last tokens and their labels", ["position", "token",
                                                                        "label"], shown))
    assert [i for i, lab in enumerate(labels) if lab != IGNORE] == [23, 24, 25]
    assert [labels[i] for i in (23, 24, 25)] == [TOK.encode("8")[0], EOS_ID,
                                                 TOK.encode("\n")[0]]
    x, y = pad_batch([(ids, labels)])
    # After the shift, the target of position 22 (the newline of the header) is the answer.
    assert [i for i, t in enumerate(y[0].tolist()) if t != IGNORE] == [22, 23, 24]
    record = multi_turn(make_tasks("addition", 3, seed=0, digits=1), system="be brief")
    ids, _ = encode_chat(TOK, record["conversations"])
    labels = assistant_labels(torch.tensor(ids), start, end).tolist()
    spans = [i for i in range(len(labels)) if labels[i] != IGNORE
             and (i == 0 or labels[i - 1] == IGNORE)]
    assert len(spans) == 3
    assert all(ids[i - len(start):i] == start for i in spans)
    ends = [i for i in range(len(labels)) if labels[i] != IGNORE
            and (i + 1 == len(labels) or labels[i + 1] == IGNORE)]
    assert all(ids[i - len(end) + 1:i + 1] == end for i in ends)
