"""Plausible wrong answers to lesson 06; tests/test_mutants.py proves each one is caught."""
from minimind.model import count_parameters as _reference_count
from minimind.course import mutant


# --- transformer_block -----------------------------------------------------------------------

@mutant("transformer_block", "Post-LN order: norm(x + f(x))")
def block_post_ln(x, block, cos, sin):
    h = block.input_layernorm(x + block.self_attn(x, cos, sin)[0])
    return block.post_attention_layernorm(h + block.mlp(h))


@mutant("transformer_block", "skip path taken from the normed input")
def block_normed_skip(x, block, cos, sin):
    n = block.input_layernorm(x)
    h = n + block.self_attn(n, cos, sin)[0]
    n = block.post_attention_layernorm(h)
    return n + block.mlp(n)


@mutant("transformer_block", "input_layernorm reused before the FFN")
def block_same_norm_twice(x, block, cos, sin):
    h = x + block.self_attn(block.input_layernorm(x), cos, sin)[0]
    return h + block.mlp(block.input_layernorm(h))


@mutant("transformer_block", "attention and FFN in parallel (GPT-J style)")
def block_parallel(x, block, cos, sin):
    attn = block.self_attn(block.input_layernorm(x), cos, sin)[0]
    return x + attn + block.mlp(block.post_attention_layernorm(x))


@mutant("transformer_block", "RoPE tables not passed to the attention")
def block_no_rope(x, block, cos, sin):
    h = x + block.self_attn(block.input_layernorm(x), None, None)[0]
    return h + block.mlp(block.post_attention_layernorm(h))


@mutant("transformer_block", "FFN's residual forgotten")
def block_ffn_no_residual(x, block, cos, sin):
    h = x + block.self_attn(block.input_layernorm(x), cos, sin)[0]
    return block.mlp(block.post_attention_layernorm(h))


@mutant("transformer_block", "FFN skipped")
def block_no_ffn(x, block, cos, sin):
    return x + block.self_attn(block.input_layernorm(x), cos, sin)[0]


# --- count_parameters ------------------------------------------------------------------------

def _ffn(config, n_mats):
    return n_mats * config.hidden_size * config.intermediate_size


@mutant("count_parameters", "lm_head counted even when tied to the embedding")
def count_tied_twice(config):
    extra = 0 if not config.tie_word_embeddings else config.vocab_size * config.hidden_size
    return _reference_count(config) + extra


@mutant("count_parameters", "GQA ignored: k_proj and v_proj counted as C x C")
def count_no_gqa(config):
    C, L = config.hidden_size, config.num_hidden_layers
    kv = config.num_key_value_heads * config.head_dim
    return _reference_count(config) + L * 2 * C * (C - kv)


@mutant("count_parameters", "SwiGLU counted with two matrices")
def count_swiglu_two(config):
    fix = _ffn(config, 1) if config.ffn == "swiglu" else 0
    if config.use_moe:
        fix *= config.n_routed_experts + config.n_shared_experts
    return _reference_count(config) - config.num_hidden_layers * fix


@mutant("count_parameters", "the two per-layer norms forgotten")
def count_no_block_norms(config):
    per = {"rms": 1, "layer": 2, "none": 0}[config.norm] * config.hidden_size
    return _reference_count(config) - 2 * config.num_hidden_layers * per


@mutant("count_parameters", "final norm forgotten")
def count_no_final_norm(config):
    per = {"rms": 1, "layer": 2, "none": 0}[config.norm] * config.hidden_size
    return _reference_count(config) - per


@mutant("count_parameters", "learned position embeddings forgotten")
def count_no_positions(config):
    pos = config.max_position_embeddings * config.hidden_size
    return _reference_count(config) - (pos if config.position == "learned" else 0)


@mutant("count_parameters", "LayerNorm's bias forgotten")
def count_ln_no_bias(config):
    n = 2 * config.num_hidden_layers + 1
    return _reference_count(config) - (n * config.hidden_size if config.norm == "layer" else 0)


@mutant("count_parameters", "MoE router forgotten")
def count_moe_no_router(config):
    router = config.n_routed_experts * config.hidden_size if config.use_moe else 0
    return _reference_count(config) - config.num_hidden_layers * router
