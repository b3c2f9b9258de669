"""Lesson 06 (transformer block): the exercises and their known wrong versions."""
from minimind.course.mistakes import mistake

REFERENCE = "minimind.model"
EXERCISES = ("transformer_block", "count_parameters")


# --- transformer_block -----------------------------------------------------------------------

def _attn(block, h, cos, sin):
    return block.self_attn(h, cos, sin)[0]


@mistake("transformer_block", "Post-LN order, norm(x + f(x)) (MiniMind normalises the "
                              "sublayer's input)",
         hint="Pre-LN: each sublayer reads a normalised copy of the stream, and its output is "
              "added to the stream, which itself is never normalised inside the block")
def block_post_ln(x, block, cos, sin):
    h = block.input_layernorm(x + _attn(block, x, cos, sin))
    return block.post_attention_layernorm(h + block.mlp(h))


@mistake("transformer_block", "skip path taken from the normalised input",
         hint="only the sublayer's input is normalised; the residual adds to the raw stream")
def block_normed_skip(x, block, cos, sin):
    n = block.input_layernorm(x)
    h = n + _attn(block, n, cos, sin)
    n = block.post_attention_layernorm(h)
    return n + block.mlp(n)


@mistake("transformer_block", "input_layernorm used before the FFN too",
         hint="the block has two norms with their own weights: the second one, "
              "post_attention_layernorm, feeds the FFN")
def block_same_norm_twice(x, block, cos, sin):
    h = x + _attn(block, block.input_layernorm(x), cos, sin)
    return h + block.mlp(block.input_layernorm(h))


@mistake("transformer_block", "the two norms swapped",
         hint="input_layernorm feeds the attention, post_attention_layernorm the FFN")
def block_norms_swapped(x, block, cos, sin):
    h = x + _attn(block, block.post_attention_layernorm(x), cos, sin)
    return h + block.mlp(block.input_layernorm(h))


@mistake("transformer_block", "attention's residual forgotten",
         hint="add the attention's output to x: the stream carries x past the attention")
def block_attn_no_residual(x, block, cos, sin):
    h = _attn(block, block.input_layernorm(x), cos, sin)
    return h + block.mlp(block.post_attention_layernorm(h))


@mistake("transformer_block", "FFN's residual forgotten",
         hint="add the FFN's output to h, the stream after the attention")
def block_ffn_no_residual(x, block, cos, sin):
    h = x + _attn(block, block.input_layernorm(x), cos, sin)
    return block.mlp(block.post_attention_layernorm(h))


@mistake("transformer_block", "attention and FFN in parallel (GPT-J), not in sequence",
         hint="the FFN reads the stream after the attention has added to it, not x")
def block_parallel(x, block, cos, sin):
    attn = _attn(block, block.input_layernorm(x), cos, sin)
    return x + attn + block.mlp(block.post_attention_layernorm(x))


@mistake("transformer_block", "cos and sin not passed to the attention (no RoPE)",
         hint="pass the cos and sin you were given on to block.self_attn: they encode positions")
def block_no_rope(x, block, cos, sin):
    h = x + _attn(block, block.input_layernorm(x), None, None)
    return h + block.mlp(block.post_attention_layernorm(h))


@mistake("transformer_block", "FFN skipped",
         hint="after the attention, the block runs its FFN (block.mlp) on the stream too")
def block_no_ffn(x, block, cos, sin):
    return x + _attn(block, block.input_layernorm(x), cos, sin)


# --- count_parameters ------------------------------------------------------------------------

def _count(config, *, lm_head=None, kv_heads=None, swiglu_mats=3, gelu_mats=2, block_norms=2,
           final_norm=1, positions=True, ln_bias=True, router=True, shared_experts=True):
    """The parameter count with one part counted wrong; the defaults count every part right.

    lm_head: True/False counts the head always/never (None: unless tied); kv_heads: the number
    of key/value heads counted (None: the config's)."""
    C, L, D = config.hidden_size, config.num_hidden_layers, config.head_dim
    H = config.num_attention_heads
    KV = config.num_key_value_heads if kv_heads is None else kv_heads
    norm = {"rms": C, "layer": (2 if ln_bias else 1) * C, "none": 0}[config.norm]
    attn = 2 * C * H * D + 2 * C * KV * D
    mats = {"swiglu": swiglu_mats, "gelu": gelu_mats, "relu": gelu_mats, "none": 0}[config.ffn]
    ffn = mats * C * config.intermediate_size
    if config.use_moe:
        experts = config.n_routed_experts + (config.n_shared_experts if shared_experts else 0)
        ffn = experts * swiglu_mats * C * config.intermediate_size
        ffn += config.n_routed_experts * C if router else 0
    head = (not config.tie_word_embeddings) if lm_head is None else lm_head
    embed = config.vocab_size * C * (2 if head else 1)
    pos = config.max_position_embeddings * C if positions and config.position == "learned" else 0
    return embed + pos + L * (attn + ffn + block_norms * norm) + final_norm * norm


@mistake("count_parameters", "lm_head counted even when tied to the embedding",
         hint="with tie_word_embeddings the head and the embedding are one tensor: count it once")
def count_tied_twice(config):
    return _count(config, lm_head=True)


@mistake("count_parameters", "untied lm_head forgotten",
         hint="without tie_word_embeddings, lm_head is a second vocab x hidden matrix")
def count_untied_head_forgotten(config):
    return _count(config, lm_head=False)


@mistake("count_parameters", "GQA ignored: k_proj and v_proj counted with every query head",
         hint="k_proj and v_proj have num_key_value_heads heads, fewer than the query heads")
def count_no_gqa(config):
    return _count(config, kv_heads=config.num_attention_heads)


@mistake("count_parameters", "SwiGLU counted with two matrices",
         hint="SwiGLU has a gate, an up and a down projection")
def count_swiglu_two(config):
    return _count(config, swiglu_mats=2)


@mistake("count_parameters", "GELU/ReLU MLP counted with three matrices",
         hint="a plain MLP has an up and a down projection only; the gate is SwiGLU's")
def count_gelu_three(config):
    return _count(config, gelu_mats=3)


@mistake("count_parameters", "the two per-layer norms forgotten",
         hint="every block has two norms of its own, one before each sublayer")
def count_no_block_norms(config):
    return _count(config, block_norms=0)


@mistake("count_parameters", "final norm forgotten",
         hint="one more norm sits after the last block, before lm_head")
def count_no_final_norm(config):
    return _count(config, final_norm=0)


@mistake("count_parameters", "learned position embeddings forgotten",
         hint='with position == "learned" the model has a table of one vector per position')
def count_no_positions(config):
    return _count(config, positions=False)


@mistake("count_parameters", "LayerNorm's bias forgotten",
         hint="LayerNorm has a bias as well as a weight; RMSNorm has only the weight")
def count_ln_no_bias(config):
    return _count(config, ln_bias=False)


@mistake("count_parameters", "MoE router forgotten",
         hint="with use_moe every layer also has a router, one score per routed expert")
def count_moe_no_router(config):
    return _count(config, router=False)


@mistake("count_parameters", "MoE shared experts forgotten",
         hint="with use_moe every layer also has n_shared_experts experts every token uses")
def count_moe_no_shared(config):
    return _count(config, shared_experts=False)
