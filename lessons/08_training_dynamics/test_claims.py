"""Lesson 08 claims: how the learning rate, warmup, clipping, batch size and model size shape a
training run, and which loss values to expect, measured on the reference MiniMind."""
import math

import pytest
import torch

from minimind.config import ModelConfig, preset
from minimind.data import load_corpus, ngram_entropy
from minimind.lab import (
    LineFigure,
    Run,
    Table,
    TrainSettings,
    compare,
    loss_curves,
    nudge_weights,
    threads,
)
from minimind.lab.measure import nonfinite_origin
from minimind.model import MiniMindForCausalLM

SETTINGS = TrainSettings(steps=100, lr=1e-2, batch_size=16, seq_len=32)
LRS = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 5e-1)
BEST_GUESS = 1e-2  # the sweep's usual optimum; the runs that other claims reuse train at it
HIGH_LR, WARMUP = 5e-1, 50  # an Adam learning rate that spikes without warmup; half the run


def _config(**changes) -> ModelConfig:
    """MiniMind (Pre-RMSNorm, RoPE, SwiGLU), 2 blocks of width 32, character vocabulary."""
    fields = dict(vocab_size=load_corpus().vocab_size, hidden_size=32, num_hidden_layers=2,
                  max_position_embeddings=64) | changes
    return preset("char-small", **fields)


def _lr_name(lr: float) -> str:
    return f"lr {lr:g}"


def _rise(run: Run) -> float:
    """How far the loss ever rose above its value at step 0 (0 when it never did; inf when it
    went non-finite)."""
    if run.first_nonfinite_step is not None:
        return math.inf
    return max(run.losses) - run.losses[0]


SPIKE = 0.5  # a spike: a step whose loss is this far above the lowest loss before it


def _spikes(run: Run) -> int:
    """Steps whose loss is SPIKE above the best loss so far; a non-finite loss counts as one."""
    count, best = 0, math.inf
    for loss in run.losses:
        count += loss > best + SPIKE
        best = min(best, loss)
    return count + (run.first_nonfinite_step is not None)


@pytest.fixture(scope="module")
def lr_runs(seed: int):
    """The learning-rate sweep, plus the highest rate with warmup and with clipping."""
    variants = {_lr_name(lr): dict(lr=lr) for lr in LRS}
    variants[f"{_lr_name(HIGH_LR)} + warmup {WARMUP}"] = dict(lr=HIGH_LR, warmup=WARMUP)
    variants[f"{_lr_name(HIGH_LR)} + clip 1.0"] = dict(lr=HIGH_LR, grad_clip=1.0)
    return compare(_config(), {name: {} for name in variants}, SETTINGS, seed=seed,
                   variant_settings=variants)


# --- 1. the learning rate ----------------------------------------------------------------------

@pytest.mark.claim
@pytest.mark.slow
def test_learning_rate_has_a_u_shaped_optimum(seed, claim, lr_runs):
    """Final loss over a sweep of learning rates is U-shaped: too small learns slowly, too large
    spikes and stalls, the best rate lies strictly inside the sweep."""
    finals = [lr_runs[_lr_name(lr)].final_loss for lr in LRS]
    claim.table(lr_runs.table(f"AdamW, constant learning rate, {SETTINGS.steps} steps"))
    claim.figure("learning-rate-sweep", LineFigure(
        {"final training loss": (LRS, finals)}, xlabel="learning rate (log scale)",
        ylabel="final training loss", logx=True, logx_base=10,
        hline=(math.log(load_corpus().vocab_size), "uniform guess, ln 80"),
        title=f"final loss against learning rate, {SETTINGS.steps} steps (seed {seed})"))
    best = min(finals)
    # A monotone curve (no optimum inside the sweep) measures 0 at one of the two ends.
    claim.check("smallest lr (1e-4) minus best final loss", finals[0] - best, ">", 0.5)
    claim.check("largest lr (0.5) minus best final loss", finals[-1] - best, ">", 0.2)
    claim.check("best lr / 1e-2 (log10, within one decade)",
                abs(math.log10(LRS[finals.index(best)] / BEST_GUESS)), "<", 1.01)


# --- 2. warmup ---------------------------------------------------------------------------------

@pytest.mark.claim
@pytest.mark.slow
def test_warmup_removes_the_loss_spike_of_a_high_learning_rate(seed, claim, lr_runs):
    """At lr 0.5 the loss climbs above its starting value within a few steps without warmup;
    with a linear warmup it never rises above it."""
    plain = lr_runs[_lr_name(HIGH_LR)]
    warm = lr_runs[f"{_lr_name(HIGH_LR)} + warmup {WARMUP}"]
    claim.table(Table(
        f"lr {HIGH_LR:g}, with and without {WARMUP} warmup steps (seed {seed})",
        ["variant", "loss@0", "max loss", "rise above loss@0", "step of max", "final loss"],
        [[name, r.losses[0], r.max_loss, _rise(r), r.losses.index(r.max_loss), r.final_loss]
         for name, r in (("no warmup", plain), ("warmup", warm))]))
    claim.figure("warmup-spike", loss_curves(
        {"no warmup": plain, f"warmup {WARMUP} steps": warm},
        f"lr {HIGH_LR:g}: the early spike and warmup (seed {seed})"))
    # Warmup that changed nothing would measure the same rise for both runs.
    claim.check("no warmup: rise of the loss above its start", _rise(plain), ">", 1.0)
    claim.check("warmup: rise of the loss above its start", _rise(warm), "<", 0.1)


# --- 3. clipping -------------------------------------------------------------------------------

SGD_LR, CLIP = 1.0, 1.0


@pytest.fixture(scope="module")
def sgd_runs(seed: int):
    """SGD with momentum at a high rate, with and without clipping the global gradient norm."""
    sgd = SETTINGS.replace(optimizer="sgd", lr=SGD_LR)
    return compare(_config(), {"SGD": {}, f"SGD + clip {CLIP:g}": {}}, sgd, seed=seed,
                   variant_settings={f"SGD + clip {CLIP:g}": dict(grad_clip=CLIP)})


@pytest.mark.claim
@pytest.mark.slow
def test_clipping_the_global_gradient_norm_tames_loss_spikes(seed, claim, sgd_runs, lr_runs):
    """Under SGD at lr 1 clipping the global norm to 1 removes most spikes, keeps the loss from
    ever rising above its start, and trains. Under AdamW it changes little (shown)."""
    runs = {**sgd_runs.runs,
            f"AdamW {_lr_name(HIGH_LR)}": lr_runs[_lr_name(HIGH_LR)],
            f"AdamW {_lr_name(HIGH_LR)} + clip 1": lr_runs[f"{_lr_name(HIGH_LR)} + clip 1.0"]}
    table = Table(
        f"spikes (loss {SPIKE} above its best so far) with and without clipping (seed {seed})",
        ["run", "spikes", "first non-finite", "max loss", "largest grad norm", "final loss"],
        [[name, _spikes(r), r.first_nonfinite_step, r.max_loss,
          max(r.grad_norms) if r.grad_norms else math.nan, r.final_loss]
         for name, r in runs.items()],
        note="AdamW rows: shown, not asserted (Adam divides by the gradient's running size)")
    claim.table(table)
    claim.figure("clipping-spikes", loss_curves(
        {name: r for name, r in sgd_runs.runs.items()},
        f"SGD at lr {SGD_LR:g}, with and without clipping (seed {seed})", log=True))
    plain, clipped = sgd_runs["SGD"], sgd_runs[f"SGD + clip {CLIP:g}"]
    # Clipping that changed nothing would measure 0 fewer spikes and the same rise. (Without
    # clipping the run went non-finite in 38 of 40 calibration runs; with it, never.)
    claim.check("spikes without clipping minus with", _spikes(plain) - _spikes(clipped), ">", 0.5)
    claim.check("SGD clipped: rise of the loss above its start", _rise(clipped), "<", 0.1)
    claim.check("SGD clipped: uniform minus final loss", math.log(load_corpus().vocab_size) -
                clipped.final_loss, ">", 0.5)


# --- 4. batch size and steps -------------------------------------------------------------------

GRID = ((4, 100), (16, 25), (64, 25), (64, 100))  # (batch, steps); (16, 100) is the sweep's


@pytest.fixture(scope="module")
def batch_runs(seed: int, lr_runs) -> dict[tuple[int, int], Run]:
    names = {f"batch {b} x {s} steps": dict(batch_size=b, steps=s) for b, s in GRID}
    runs = compare(_config(), {n: {} for n in names}, SETTINGS, seed=seed,
                   variant_settings=names)
    found = {(b, s): runs[f"batch {b} x {s} steps"] for b, s in GRID}
    found[(SETTINGS.batch_size, SETTINGS.steps)] = lr_runs[_lr_name(SETTINGS.lr)]
    return found


@pytest.mark.claim
@pytest.mark.slow
def test_at_equal_steps_a_larger_batch_ends_lower(seed, claim, batch_runs):
    """At 100 steps, 64 sequences per batch end lower than 4. What equal tokens buy (more,
    smaller steps won every time, by too little on one seed to assert) is in the table."""
    val = {k: r.val_loss for k, r in batch_runs.items()}
    rows = [[b, s, b * s * SETTINGS.seq_len, val[(b, s)]] for b, s in sorted(val)]
    claim.table(Table(f"validation loss by batch and steps, lr {SETTINGS.lr:g} (seed {seed})",
                      ["batch", "steps", "tokens", "val loss"], rows,
                      note=f"equal tokens, 4x the steps at a quarter of the batch ended lower by "
                           f"{val[(16, 25)] - val[(4, 100)]:.3f} (12,800 tokens) and "
                           f"{val[(64, 25)] - val[(16, 100)]:.3f} (51,200): shown, not asserted"))
    claim.figure("batch-and-steps", LineFigure(
        {"25 steps": ((16, 64), (val[(16, 25)], val[(64, 25)])),
         "100 steps": ((4, 16, 64), (val[(4, 100)], val[(16, 100)], val[(64, 100)]))},
        xlabel="batch size (sequences of 32)", ylabel="validation loss", logx=True,
        title=f"batch size and step count (seed {seed})"))
    # A batch size that did not matter would measure 0. The equal-token gaps were positive in
    # all 80 comparisons of the 40 calibration runs, but 0.017 and 0.044 on seed 19 perturbed,
    # less than one run's noise: too thin to assert on another machine (README).
    claim.check("equal steps: batch 4 minus batch 64 (100 steps)", val[(4, 100)] - val[(64, 100)],
                ">", 0.2)


# --- 5. a tiny scaling law -----------------------------------------------------------------------

WIDTHS = (4, 6, 8, 12, 16)  # one head each; wider models outgrow this token budget (README)
REPEATS = 3  # runs per width, averaged: one run's noise (~0.1 nats) is as large as the effect


@pytest.fixture(scope="module")
def size_runs(seed: int) -> dict[int, list[Run]]:
    """2-block models of growing width, one head, the same steps and learning rate; each width
    trained REPEATS times (seeds seed, seed + 1000, ...), the same data order per repeat."""
    names = {f"width {w}": dict(hidden_size=w) for w in WIDTHS}
    config = _config(hidden_size=WIDTHS[0], num_attention_heads=1, num_key_value_heads=1)
    repeats = [compare(config, names, SETTINGS.replace(eval_batches=32), seed=seed + 1000 * k)
               for k in range(REPEATS)]
    return {w: [runs[f"width {w}"] for runs in repeats] for w in WIDTHS}


def _power_law(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares of log y = log a - alpha log x: (alpha, a, R^2 of the log-log fit)."""
    lx, ly = torch.tensor(xs).double().log(), torch.tensor(ys).double().log()
    slope = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    intercept = ly.mean() - slope * lx.mean()
    residual = ly - (intercept + slope * lx)
    r2 = 1 - (residual ** 2).sum() / ((ly - ly.mean()) ** 2).sum()
    return -slope.item(), intercept.exp().item(), r2.item()


@pytest.mark.claim
@pytest.mark.slow
def test_final_loss_against_parameter_count_fits_a_power_law(seed, claim, size_runs):
    """Over widths 4 to 16, validation loss (the mean of 3 runs) against parameter count is a
    straight line on a log-log plot: L = a * N^-alpha, a good fit by R^2."""
    params = [sum(p.numel() for p in size_runs[w][0].model.parameters()) for w in WIDTHS]
    losses = [sum(r.val_loss for r in size_runs[w]) / REPEATS for w in WIDTHS]
    alpha, a, r2 = _power_law(params, losses)
    fitted = [a * n ** -alpha for n in params]
    claim.table(Table(
        f"validation loss by model size, {SETTINGS.steps} steps, mean of {REPEATS} runs "
        f"(seed {seed})",
        ["width", "parameters", "val loss", "runs' spread", "fit a*N^-alpha"],
        [[w, n, v, max(r.val_loss for r in size_runs[w]) - min(r.val_loss for r in size_runs[w]),
          f] for w, n, v, f in zip(WIDTHS, params, losses, fitted)],
        note=f"alpha = {alpha:.3f}, a = {a:.3f}, R^2 of the log-log fit = {r2:.3f}"))
    claim.figure("scaling-law", LineFigure(
        {"measured": (params, losses), f"fit, alpha {alpha:.3f}": (params, fitted)},
        xlabel="parameters (log scale)", ylabel="validation loss (log scale)", logx=True,
        logy=True, title=f"loss against parameters (seed {seed})"))
    # Loss that did not depend on size measures alpha ~0 (and an R^2 of noise).
    claim.check("exponent alpha", alpha, ">", 0.04)
    claim.check("exponent alpha (upper bound)", alpha, "<", 0.3)
    claim.check("R^2 of the log-log fit", r2, ">", 0.8)


# --- 6. loss values to expect ------------------------------------------------------------------

def _smooth(losses: list[float], k: int = 5) -> list[float]:
    return [sum(losses[max(0, i - k + 1):i + 1]) / len(losses[max(0, i - k + 1):i + 1])
            for i in range(len(losses))]


@pytest.fixture(scope="module")
def entropies() -> tuple[float, float, float]:
    """(ln V, unigram entropy, bigram entropy) of the training split, in nats per character."""
    corpus = load_corpus()
    return (math.log(corpus.vocab_size), ngram_entropy(corpus.train, corpus.vocab_size, 1),
            ngram_entropy(corpus.train, corpus.vocab_size, 2))


@pytest.mark.claim
@pytest.mark.slow
def test_loss_starts_at_log_vocab_and_slows_down_at_the_unigram_loss(seed, claim, lr_runs,
                                                                     entropies):
    """Every run starts at ln 80, the uniform guess; the loss falls to the unigram entropy
    within a few steps, then descends many times more slowly: the first plateau."""
    uniform, unigram, bigram = entropies
    starts = [r.losses[0] for r in lr_runs.runs.values()]
    run = lr_runs[_lr_name(BEST_GUESS)]
    smooth = _smooth(run.losses)
    reach = next(i for i, s in enumerate(smooth) if s < unigram + 0.2)
    before = (smooth[0] - smooth[reach]) / reach
    after = (smooth[reach] - smooth[reach + 50]) / 50
    claim.table(Table(
        f"loss levels, nats per character (seed {seed})", ["level", "loss"],
        [["ln V (uniform guess)", uniform], ["unigram entropy", unigram],
         ["bigram entropy", bigram], ["lowest loss@0 of the sweep", min(starts)],
         ["highest loss@0 of the sweep", max(starts)],
         [f"lr {BEST_GUESS:g}: steps to unigram + 0.2", reach],
         ["descent per step before", before], ["descent per step over the next 50", after]]))
    claim.figure("loss-levels", LineFigure(
        {f"lr {BEST_GUESS:g}": (range(len(run.losses)), run.losses),
         f"lr {LRS[1]:g}": (range(len(run.losses)), lr_runs[_lr_name(LRS[1])].losses)},
        xlabel="step", ylabel="training loss", markers=False, hline=(unigram, "unigram entropy"),
        vline=(reach, f"lr {BEST_GUESS:g} reaches unigram + 0.2"),
        title=f"from ln 80 past the unigram loss ({bigram:.2f} is the bigram loss; seed {seed})"))
    claim.check("|loss at step 0 - ln V|", max(abs(s - uniform) for s in starts), "<", 0.1)
    claim.check(f"lr {BEST_GUESS:g}: steps to reach unigram + 0.2", reach, "<", 20)
    # No plateau (a steady descent) measures a ratio near 1.
    claim.check("descent rate before / after reaching the unigram loss", before / after, ">", 5)


@pytest.fixture(scope="module")
def bigram_run(seed: int) -> Run:
    """The same model trained on windows of one character: all it can learn is the bigram."""
    one = SETTINGS.replace(batch_size=512, seq_len=1, lr=3e-2, steps=100)
    return compare(_config(), {"context of 1 character": {}}, one, seed=seed,
                   workers=1)["context of 1 character"]


@pytest.mark.claim
@pytest.mark.slow
def test_a_model_that_sees_one_character_heads_for_the_bigram_loss(seed, claim, bigram_run,
                                                                  entropies):
    """Trained on one-character windows the model heads for the bigram entropy and does not pass
    it: the second level is the best use of the previous character alone."""
    uniform, unigram, bigram = entropies
    run = bigram_run
    claim.table(Table(f"one-character context (seed {seed})", ["", "loss"],
                      [["bigram entropy", bigram], ["final training loss", run.final_loss],
                       ["lowest training loss", min(run.losses)],
                       ["validation loss", run.val_loss]]))
    # How near it gets in 100 steps varies by seed (0.19 to 0.41 above it on seeds 0-2): shown in
    # the table, not asserted; it is still descending.
    # A model that used more than the previous character could go well below it.
    claim.check("final loss minus bigram entropy (lower bound)", run.final_loss - bigram, ">",
                -0.05)
    claim.check("unigram entropy minus final loss", unigram - run.final_loss, ">", 0.4)


NAN_LR, NAN_STEPS = 3.0, 60


@pytest.fixture(scope="module")
def nan_trace(seed: int) -> dict:
    """SGD at lr 3 until the first non-finite number, checking every tensor of every step."""
    corpus = load_corpus()
    with threads(1):
        torch.manual_seed(seed)
        model = MiniMindForCausalLM(_config())
        nudge_weights(model)
        opt = torch.optim.SGD(model.parameters(), lr=NAN_LR, momentum=0.9)
        data = torch.Generator().manual_seed(seed)
        losses: list[float] = []
        for step in range(NAN_STEPS):
            x, y = corpus.batch("train", SETTINGS.batch_size, SETTINGS.seq_len, data)

            def loss_fn(x=x, y=y):
                loss = model(x, y).loss
                losses.append(loss.item())
                return loss

            origin = nonfinite_origin(model, loss_fn)
            if origin is not None:
                return dict(step=step, origin=origin, losses=losses)
            opt.step()
            opt.zero_grad(set_to_none=True)
    return dict(step=None, origin=None, losses=losses)


@pytest.mark.claim
def test_a_diverging_run_explodes_for_several_steps_before_a_step_computes_a_nan(
    seed, claim, nan_trace, entropies
):
    """Under SGD at lr 3 the loss grows by orders of magnitude for several steps; the first
    non-finite number is then computed by a step (an activation or a gradient) from weights
    that are all still finite."""
    trace = nan_trace
    assert trace["step"] is not None, f"no non-finite value in {NAN_STEPS} steps at lr {NAN_LR}"
    losses = trace["losses"]
    claim.table(Table(
        f"SGD at lr {NAN_LR:g}: the steps before the first non-finite number (seed {seed})",
        ["step", "loss"], [[i, v] for i, v in enumerate(losses)][-6:],
        note=f"first non-finite: {trace['origin']} at step {trace['step']}"))
    claim.figure("loss-before-nan", LineFigure(
        {"training loss": (range(len(losses) - 1), losses[:-1])}, xlabel="step",
        ylabel="training loss (log scale)", logy=True, vline=(trace["step"], "first non-finite"),
        title=f"SGD at lr {NAN_LR:g}: loss until {trace['origin']} (seed {seed})"))
    # The opposite outcome: an update itself overflows a weight ("weight NAME"), so the
    # explosion would be in the optimizer step, not in what the model computes.
    assert trace["origin"].startswith(("output ", "grad ", "loss")), (
        f"first non-finite is {trace['origin']}, expected an activation or a gradient")
    finite = [v for v in losses if math.isfinite(v)]
    # The largest, not the last: on seed 12 the loss reached 2.4e6, then sat at exactly ln V
    # (uniform outputs) for three steps before a gradient overflowed.
    claim.check("largest loss before the non-finite step / ln V", max(finite) / entropies[0],
                ">", 100)
    claim.check("steps with a loss above 10x ln V before the non-finite one",
                sum(v > 10 * entropies[0] for v in finite), ">", 1.5)
