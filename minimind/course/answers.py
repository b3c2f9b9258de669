"""Quiz answers computed from the library's code at check time (named by `compute = ...` and
`verify = ...` in the lessons' quiz.toml files), so that an answer key follows the code.

Number functions return the answer; `verify` functions return the index (from 0) of the right
option of a multiple-choice question, measured by running the library's functions. Each is a
small pure function of the code; none trains anything.
"""
from __future__ import annotations

import math

import torch

from minimind import (
    attention,
    bpe,
    distill,
    dpo,
    ffn,
    generate,
    lora,
    norm,
    optim,
    rl,
    rope,
    sft,
    tokenizer,
)
from minimind.config import preset
from minimind.dataset import IGNORE, encode_chat
from minimind.model import MiniMindBlock, MiniMindForCausalLM, count_parameters, scaled_init_std
from minimind.tokenizer import byte_tokenizer


def _params(name: str, **changes: object) -> int:
    return count_parameters(preset(name, **changes))


# --- lesson 01: normalization --------------------------------------------------------------------

def layernorm_extra_parameters() -> int:
    """Parameters minimind2-small would gain with LayerNorm (a bias per norm) instead of RMSNorm."""
    return _params("minimind2-small", norm="layer") - _params("minimind2-small")


def norm_count_minimind2_small() -> int:
    """Norm modules in minimind2-small: two per block and the final one."""
    return 2 * preset("minimind2-small").num_hidden_layers + 1


def shift_invariance_option() -> int:
    """Options: (a) both invariant, (b) LayerNorm only, (c) RMSNorm only, (d) neither."""
    x = torch.linspace(-2.0, 3.0, 16, dtype=torch.float64)[None]
    w, b = torch.ones(16, dtype=torch.float64), torch.zeros(16, dtype=torch.float64)
    shifted = x + 5.0
    rms_same = torch.allclose(norm.rms_norm(x, w), norm.rms_norm(shifted, w))
    ln_same = torch.allclose(norm.layer_norm(x, w, b), norm.layer_norm(shifted, w, b))
    return {(True, True): 0, (False, True): 1, (True, False): 2, (False, False): 3}[
        (rms_same, ln_same)]


def float16_norm_option() -> int:
    """Options: (a) 1.0, (b) inf, (c) 0.0 (the mean of squares overflows), (d) NaN."""
    x = torch.full((1, 4), 300.0, dtype=torch.float16)
    naive = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)  # all in float16
    value = float(naive[0, 0])
    if math.isnan(value):
        return 3
    if math.isinf(value):
        return 1
    return 2 if value == 0.0 else 0


# --- lesson 02: position encoding ----------------------------------------------------------------

def rope_pairs_without_full_turn() -> int:
    """Pairs of a 128-wide head (theta 1e4) that turn less than once within 4096 positions."""
    inv_freq = rope.rope_inv_freq(128, 1e4)
    return int((inv_freq * 4096 < 2 * math.pi).sum())


def ntk_theta_for_4x() -> float:
    """NTK-aware base for 4x the trained length, head_dim 128, theta 1e4."""
    return rope.ntk_scaled_theta(1e4, 4.0, 128)


def rope_score_shift_option() -> int:
    """Options: (a) only on m - n, (b) on m and n separately, (c) only on m."""
    torch.manual_seed(0)
    q = torch.randn(8, dtype=torch.float64)
    k = torch.randn(8, dtype=torch.float64)
    inv_freq = rope.rope_inv_freq(8, 1e4)

    def score(m: int, n: int) -> float:
        def at(x: torch.Tensor, p: int) -> torch.Tensor:
            angles = p * inv_freq
            cos = torch.cat([angles.cos(), angles.cos()])
            sin = torch.cat([angles.sin(), angles.sin()])
            return x * cos + rope.rotate_half(x) * sin
        return float((at(q, m) * at(k, n)).sum())

    relative = math.isclose(score(7, 3), score(107, 103), rel_tol=1e-9)
    return 0 if relative else 1


# --- lesson 03: attention ------------------------------------------------------------------------

def kv_cache_bytes_per_token_fp16() -> int:
    """minimind2-small's KV cache per token in float16: keys and values, every layer."""
    cfg = preset("minimind2-small")
    return 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * 2


def kv_cache_bytes_per_token_fp16_mha() -> int:
    """The same with one key/value head per query head (full multi-head attention)."""
    cfg = preset("minimind2-small")
    return 2 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim * 2


def query_heads_of_kv_head_1_option() -> int:
    """Options: (a) 1 and 5, (b) 4, 5, 6 and 7, (c) 2 and 3, (d) 1, 3, 5 and 7."""
    cfg = preset("minimind2-small")
    kv = torch.arange(cfg.num_key_value_heads, dtype=torch.float32).view(1, 1, -1, 1)
    owners = attention.repeat_kv(kv, cfg.n_rep)[0, 0, :, 0]
    heads = tuple(int(h) for h in torch.nonzero(owners == 1).flatten())
    return {(1, 5): 0, (4, 5, 6, 7): 1, (2, 3): 2, (1, 3, 5, 7): 3}.get(heads, -1)


def cached_mask_option() -> int:
    """3 new queries over 8 keys (5 cached): which keys does query 0 see?

    Options: (a) keys 0..5, (b) key 0 only, (c) keys 0..7."""
    mask = attention.offset_causal_mask(3, 8)
    seen = [int(i) for i in torch.nonzero(mask[0]).flatten()]
    return {tuple(range(6)): 0, (0,): 1, tuple(range(8)): 2}.get(tuple(seen), -1)


# --- lesson 04: feed-forward ---------------------------------------------------------------------

def swiglu_parameters_at_96() -> int:
    """A SwiGLU FFN at hidden 96 with its 8/3 width (no rounding): three 96 x 256 matrices."""
    width = 8 * 96 // 3
    block = ffn.FeedForward(preset("tiny", hidden_size=96, num_attention_heads=4,
                                   intermediate_size=width))
    return sum(p.numel() for p in block.parameters())


def gelu_width_matching_swiglu_at_96() -> int:
    """Width of a two-matrix GELU MLP with the same parameters as that SwiGLU."""
    return swiglu_parameters_at_96() // (2 * 96)


def minimind2_small_ffn_width() -> int:
    """MiniMind's FFN width at hidden 512: 8/3 of it, rounded up to a multiple of 64."""
    return ffn.intermediate_size(512)


def silu_odd_part_option() -> int:
    """Options: (a) 0, (b) x, (c) sigmoid(x), (d) 2x."""
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    diff = ffn.silu(x) - ffn.silu(-x)
    for index, candidate in ((0, torch.zeros_like(x)), (1, x), (2, torch.sigmoid(x)), (3, 2 * x)):
        if torch.allclose(diff, candidate):
            return index
    return -1


# --- lesson 05: residual connections -------------------------------------------------------------

def minimind2_down_proj_std() -> float:
    """The init std of minimind2's residual-writing projections: 0.02 / sqrt(2 * 16)."""
    cfg = preset("minimind2")
    return scaled_init_std(cfg.initializer_range, cfg.num_hidden_layers)


def unscaled_stream_variance_ratio() -> int:
    """How many times larger the stream's added variance at init is with plain 0.02 (2L)."""
    cfg = preset("minimind2")
    scaled = scaled_init_std(cfg.initializer_range, cfg.num_hidden_layers)
    return round((cfg.initializer_range / scaled) ** 2)


# --- lesson 06: the transformer block ------------------------------------------------------------

def tied_embedding_saving() -> int:
    """Parameters weight tying saves in minimind2-small: the untied head's V x C."""
    return (_params("minimind2-small", tie_word_embeddings=False)
            - _params("minimind2-small"))


def minimind2_small_parameters() -> int:
    return _params("minimind2-small")


def gqa_saving_per_layer() -> int:
    """Parameters per layer minimind2-small saves with 2 key/value heads instead of 8."""
    cfg = preset("minimind2-small")
    full = _params("minimind2-small", num_key_value_heads=cfg.num_attention_heads)
    return (full - _params("minimind2-small")) // cfg.num_hidden_layers


def kv_cache_flops_per_cached_position_minimind2() -> int:
    """Attention FLOPs per new token per cached position in minimind2: 4 x L x H x D."""
    cfg = preset("minimind2")
    return 4 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim


# --- lesson 07: tokenization ---------------------------------------------------------------------

def encode_aaaaa_option() -> int:
    """`encode("aaaaa", learn_merges("aaaa", 258))`.

    Options: (a) [256, 256, 97], (b) [97, 257], (c) [257, 97], (d) [256, 257]."""
    ids = bpe.encode("aaaaa", bpe.learn_merges("aaaa", 258))
    options = ([256, 256, 97], [97, 257], [257, 97], [256, 257])
    return options.index(ids) if ids in options else -1


def decode_split_character_option() -> int:
    """The two bytes of 'é' decoded token by token and joined.

    Options: (a) 'é', (b) two U+FFFD, (c) a UnicodeDecodeError, (d) 'Ã©'."""
    try:
        text = "".join(bpe.decode([b], []) for b in "é".encode("utf-8"))
    except UnicodeDecodeError:
        return 2
    return {"é": 0, "\ufffd\ufffd": 1, "Ã©": 3}.get(text, -1)


def byte_tokens_for_tokyo() -> int:
    """Tokens MiniMind's byte tokenizer (bytes and specials, no merges) gives for '东京'."""
    return len(tokenizer.byte_tokenizer().encode("东京"))


def embedding_share_minimind2_small() -> float:
    """Share of minimind2-small's parameters in its (tied) embedding: V x C / all."""
    cfg = preset("minimind2-small")
    return cfg.vocab_size * cfg.hidden_size / count_parameters(cfg)


def vocab_32000_extra_parameters() -> int:
    """Parameters minimind2-small would gain with a 32,000-token vocabulary (tied head)."""
    return _params("minimind2-small", vocab_size=32000) - _params("minimind2-small")


# --- lesson 08: training dynamics ----------------------------------------------------------------

def lr_at_step_0_with_warmup() -> float:
    """The rate of step 0 of 1000, peak 1e-3, 100 warmup steps: peak / warmup, not 0."""
    return optim.lr_at(0, 1000, 1e-3, warmup=100)


def lr_at_step_550_with_warmup() -> float:
    """The rate of step 550 of the same run: halfway down the cosine, 0.55 of the peak."""
    return optim.lr_at(550, 1000, 1e-3, warmup=100)


def global_clip_factor_3_4_12() -> float:
    """The factor `clip_by_global_norm` applies to gradients of norms 3, 4, 12 at max_norm 1."""
    grads = [torch.tensor(values, dtype=torch.float64) for values in ([3.0], [0.0, 4.0], [12.0])]
    clipped = optim.clip_by_global_norm(grads, 1.0)
    return float(clipped[0][0] / grads[0][0])


def adamw_first_step_option() -> int:
    """How far AdamW's first step moves weights with gradients 1e-4 and 100 (lr 1e-3, no decay).

    Options: (a) 1e-4 x lr and 100 x lr, (b) 0, (c) lr / sqrt(gradient), (d) both about lr."""
    lr = 1e-3
    grad = torch.tensor([1e-4, 100.0], dtype=torch.float64)
    zeros = torch.zeros_like(grad)
    new, _, _ = optim.adamw_step(zeros, grad, zeros, zeros, step=1, lr=lr, weight_decay=0.0)
    moved = new.abs()
    candidates = (grad * lr, zeros, lr / grad.sqrt(), torch.full_like(moved, lr))
    for index, candidate in enumerate(candidates):
        if torch.allclose(moved, candidate, rtol=1e-2, atol=1e-12):
            return index
    return -1


def init_loss_at_vocab_6400() -> float:
    """The loss of a freshly initialised MiniMind with a 6400-token vocabulary (about ln 6400)."""
    with torch.random.fork_rng(devices=[]):  # a fixed draw that leaves the caller's RNG alone
        torch.manual_seed(0)
        model = MiniMindForCausalLM(preset("tiny", vocab_size=6400))
        ids = torch.randint(0, 6400, (4, 33))
        with torch.no_grad():
            loss = model(ids[:, :-1], targets=ids[:, 1:]).loss
    return float(loss)


# --- lesson 09: generation -----------------------------------------------------------------------

def top_p_kept_at_0_9() -> int:
    """Tokens `top_p_mask` keeps at p = 0.9 from probabilities 1/2, 1/4, 1/8, 1/16, 1/16."""
    probs = torch.tensor([[0.0625, 0.5, 0.125, 0.0625, 0.25]], dtype=torch.float64)
    return int(generate.top_p_mask(probs, 0.9).sum())


def temperature_tie_option() -> int:
    """softmax(z / T) for a tie at the top (z = 2, 2, 1, 0) as T -> 0.

    Options: (a) all on the lower id, (b) one-hot on one of the two at random, (c) half on each
    of the two, (d) uniform over all tokens."""
    z = torch.tensor([[2.0, 2.0, 1.0, 0.0]], dtype=torch.float64)
    p = generate.logits_to_probs(z, temperature=1e-3)[0]
    candidates = {0: [1.0, 0.0, 0.0, 0.0], 2: [0.5, 0.5, 0.0, 0.0], 3: [0.25] * 4}
    for index, candidate in candidates.items():
        if torch.allclose(p, torch.tensor(candidate, dtype=torch.float64), atol=1e-9):
            return index
    return -1  # none of the distributions the options describe


def negative_logit_penalty_option() -> int:
    """A seen token's logit -2 under repetition penalty 1.3.

    Options: (a) about -1.54, (b) -2, (c) -3.3, (d) -2.6."""
    logits = torch.tensor([[-2.0, 1.0]], dtype=torch.float64)
    value = float(generate.apply_repetition_penalty(logits, torch.tensor([[0]]), 1.3)[0, 0])
    for index, candidate in enumerate((-2.0 / 1.3, -2.0, -3.3, -2.6)):
        if math.isclose(value, candidate, rel_tol=1e-9):
            return index
    return -1


def penalty_on_every_token_option() -> int:
    """What the repetition penalty applied to every token of the vocabulary does to the argmax.

    Options: (a) never changes it, (b) picks the smallest |logit|, (c) changes it whenever the
    top logit is positive, (d) makes it random."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(256, 50, generator=gen, dtype=torch.float64) * 3
    every = torch.arange(50).expand(256, 50)
    penalized = generate.apply_repetition_penalty(logits, every, 1.3)
    same = bool((penalized.argmax(-1) == logits.argmax(-1)).all())
    return 0 if same else -1


def positions_fed_without_cache() -> int:
    """Positions `greedy_decode` feeds the model for 8 new tokens after a 4-token prompt."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MiniMindForCausalLM(preset("tiny"))
    fed = []
    hook = model.model.register_forward_pre_hook(lambda module, args: fed.append(args[0].shape[1]))
    try:
        generate.greedy_decode(model, torch.tensor([[1, 2, 3, 4]]), 8)
    finally:
        hook.remove()
    return sum(fed)


def minimind2_prefix_where_cache_reads_equal_weight_flops() -> float:
    """The cached prefix at which MiniMind2's attention over the cache (4 x L x H x D FLOPs per
    cached position) costs as much as its weight matmuls (2 FLOPs per weight of every linear
    layer, the tied LM head included) for one new token."""
    cfg = preset("minimind2")
    norms = (2 * cfg.num_hidden_layers + 1) * cfg.hidden_size
    weight_flops = 2 * (count_parameters(cfg) - norms)
    return weight_flops / (4 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim)

# --- lesson 10: supervised fine-tuning -----------------------------------------------------------

def _labelled(*turns: tuple[str, str]) -> tuple[list[int], list[int]]:
    """(ids, assistant_labels) of a conversation of (user, assistant) turns, byte tokens."""
    tok = byte_tokenizer()
    messages = [{"role": role, "content": text} for user, answer in turns
                for role, text in (("user", user), ("assistant", answer))]
    ids, _ = encode_chat(tok, messages)
    return ids, sft.assistant_labels(torch.tensor(ids), *sft.chat_markers(tok)).tolist()


def sft_supervised_tokens_two_turns() -> int:
    """Positions MiniMind's mask supervises in user '3+5=' / '8' / user '12+30=' / '42'."""
    _, labels = _labelled(("3+5=", "8"), ("12+30=", "42"))
    return sum(lab != IGNORE for lab in labels)


def sft_answer_share_without_mask() -> float:
    """Unmasked, every token after the first is a target: the answer's share of those targets,
    for user '3+5=', assistant '8' (the answer, <|im_end|> and newline over all 25 targets)."""
    ids, labels = _labelled(("3+5=", "8"))
    return sum(lab != IGNORE for lab in labels[1:]) / (len(ids) - 1)


def sft_position_predicting_the_answer() -> int:
    """After pad_batch's shift, the position whose target is the answer's first token ('8')."""
    _, y = sft.pad_batch([_labelled(("3+5=", "8"))])
    return next(i for i, t in enumerate(y[0].tolist()) if t != IGNORE)


def masked_prompt_still_read_option() -> int:
    """Does the user turn, masked out of the loss, change the logits at the answer's position?

    Options: (a) yes: attention reads it, only the loss skips it, (b) no: masked tokens are
    hidden from attention too. Measured on a small random model: two prompts that differ in one
    user token give different logits where the answer is predicted."""
    torch.manual_seed(0)
    model = MiniMindForCausalLM(preset("tiny", vocab_size=byte_tokenizer().vocab_size)).eval()
    rows = [_labelled((q, "8"))[0] for q in ("3+5=", "4+4=")]
    with torch.no_grad():
        logits = model(torch.tensor(rows)).logits[:, -4]  # the header's newline: predicts '8'
    return 1 if torch.equal(logits[0], logits[1]) else 0


# --- lesson 11: LoRA -----------------------------------------------------------------------------

def _lora_block_minimind2_small(rank: int = 8) -> tuple[torch.nn.Module, list[str]]:
    """One minimind2-small block wrapped by apply_lora's default rule. The rest of the model
    holds no Linear the rule wraps (the embedding is no Linear, the head is left out), so the
    model's adapter is this block's, once per layer."""
    block = MiniMindBlock(0, preset("minimind2-small"))
    return block, lora.apply_lora(block, rank=rank)


def lora_trainable_minimind2_small_rank8() -> int:
    """Trainable parameters of minimind2-small under MiniMind's rule at rank 8."""
    block, _ = _lora_block_minimind2_small()
    return lora.trainable_parameters(block) * preset("minimind2-small").num_hidden_layers


def lora_share_minimind2_small_rank8() -> float:
    """Those parameters as a share of the wrapped model's parameters (base plus adapter)."""
    adapter = lora_trainable_minimind2_small_rank8()
    return adapter / (_params("minimind2-small") + adapter)


def lora_wrapped_matrices_option() -> int:
    """Which matrices of a minimind2-small block does apply_lora's default rule wrap?

    Options: (a) q, k, v and o, (b) q_proj and o_proj, (c) k_proj and v_proj, (d) every Linear
    (the FFN's too)."""
    _, names = _lora_block_minimind2_small()
    wrapped = tuple(sorted(n.rsplit(".", 1)[-1] for n in names))
    return {("k_proj", "o_proj", "q_proj", "v_proj"): 0, ("o_proj", "q_proj"): 1,
            ("k_proj", "v_proj"): 2}.get(wrapped, 3)


def lora_first_gradient_option() -> int:
    """At initialization (A random, B zero), which adapter matrix gets a nonzero gradient?

    Options: (a) only B, (b) only A, (c) both, (d) neither."""
    g = torch.Generator().manual_seed(0)
    a, b = lora.lora_init(16, 16, 4, generator=g)
    a.requires_grad_(True)
    b.requires_grad_(True)
    x = torch.randn(8, 16, generator=g)
    weight = torch.randn(16, 16, generator=g)
    lora.lora_linear(x, weight, a, b, alpha=4.0).pow(2).sum().backward()
    assert a.grad is not None and b.grad is not None
    moved = (bool(b.grad.abs().sum() > 0), bool(a.grad.abs().sum() > 0))
    return {(True, False): 0, (False, True): 1, (True, True): 2, (False, False): 3}[moved]


# --- lesson 12: direct preference optimisation ---------------------------------------------------

def _logprob(value: float, requires_grad: bool = False) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.float64, requires_grad=requires_grad)


def dpo_loss_at_the_reference() -> float:
    """The DPO loss of a pair when policy == reference: -logsigmoid(0) = ln 2."""
    chosen, rejected = _logprob(-7.3), _logprob(-9.3)
    return float(dpo.dpo_loss(chosen, rejected, chosen, rejected, beta=0.1))


def dpo_loss_after_one_nat() -> float:
    """The DPO loss at beta 0.1 once the policy gained a margin of 1 nat over the reference."""
    ref = _logprob(-4.0)
    return float(dpo.dpo_loss(ref + 0.5, ref - 0.5, ref, ref, beta=0.1))


def dpo_gradient_ratio_margin_0_vs_20() -> float:
    """How many times larger a pair's gradient is at margin 0 than at margin 20 (beta 0.1):
    sigmoid(0) / sigmoid(-2), measured by autograd through dpo_loss."""
    def grad_at(margin: float) -> float:
        chosen, zero = _logprob(margin, requires_grad=True), _logprob(0.0)
        dpo.dpo_loss(chosen, zero, zero, zero, beta=0.1).sum().backward()
        assert chosen.grad is not None
        return abs(float(chosen.grad))

    return grad_at(0.0) / grad_at(20.0)


def sequence_logprob_position_option() -> int:
    """From which position does sequence_logprob read token t's log-probability?

    Options: (a) t - 1, (b) t, (c) t + 1. Measured on random logits against each reading."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 6, 9, generator=g, dtype=torch.float64)
    ids = torch.randint(9, (1, 6), generator=g)
    mask = torch.tensor([[False, False, True, True, False, False]])
    got = float(dpo.sequence_logprob(logits, ids, mask))
    logp = torch.log_softmax(logits[0], -1)
    for option, shift in ((0, -1), (1, 0), (2, 1)):
        value = sum(float(logp[t + shift, ids[0, t]]) for t in (2, 3))
        if math.isclose(got, value, rel_tol=1e-5):  # it computes in float32
            return option
    return -1


# --- lesson 13: RL with verifiable rewards, and distillation -------------------------------------

def grpo_advantage_of_the_right_answer() -> float:
    """Group [1, 0.1, 0.1, 0]: the right answer's advantage (Bessel's std, eps 1e-4)."""
    return float(rl.group_advantages(torch.tensor([1.0, 0.1, 0.1, 0.0]), 4)[0])


def grpo_advantages_of_an_all_equal_group() -> float:
    """The summed |advantage| of a group of eight answers that all earned 0.1."""
    return float(rl.group_advantages(torch.full((8,), 0.1), 8).abs().sum())


def kl_estimate_at_minus_one() -> float:
    """MiniMind's per-token KL estimate exp(d) - d - 1 where the policy's log-prob is -1 and the
    reference's -2 (d = ref_logp - logp = -1)."""
    return float(rl.kl_estimate(_logprob(-1.0), _logprob(-2.0)))


def clipped_ratio_gradient_option() -> int:
    """Gradient of the clipped surrogate for a token at ratio 1.5, clip 0.2, advantage 2 > 0.

    Options: (a) zero, (b) -1.5 A (the unclipped term's), (c) -1.2 A, (d) positive."""
    logp = torch.tensor([[-1.0]], dtype=torch.float64, requires_grad=True)
    old = logp.detach() - math.log(1.5)
    rl.clipped_policy_loss(logp, old, _logprob(2.0)).sum().backward()
    assert logp.grad is not None
    grad = float(logp.grad)
    if grad == 0.0:
        return 0
    if math.isclose(grad, -1.5 * 2.0):
        return 1
    return 2 if math.isclose(grad, -1.2 * 2.0) else 3


def distill_soft_term_weight() -> float:
    """distill_loss at alpha 0 over soft_kl: the factor T^2 at MiniMind's T = 1.5."""
    g = torch.Generator().manual_seed(0)
    student = torch.randn(2, 5, 11, generator=g)
    teacher = torch.randn(2, 5, 11, generator=g)
    targets = torch.randint(11, (2, 5), generator=g)
    targets[:, :2] = IGNORE
    soft = distill.soft_kl(student, teacher, targets != IGNORE, distill.TEMPERATURE)
    return float(distill.distill_loss(student, teacher, targets, alpha=0.0) / soft)
