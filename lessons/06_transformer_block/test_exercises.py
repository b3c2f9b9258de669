"""Exercise tests for lesson 06: each passes on a right answer and names the mistake otherwise."""
import pytest
import torch

from minimind.config import ModelConfig, preset
from minimind.course import WrongAnswer, check_close
from minimind.lab import randomize_weights
from minimind.model import MiniMindBlock, MiniMindForCausalLM, transformer_block
from minimind.rope import rope_frequencies_for

ATOL, RTOL = 1e-5, 1e-5


def _block_setup(config: ModelConfig, seed: int, T: int = 7):
    """A block whose every weight (norm weights included) is random, an input, and RoPE tables.

    Random norm weights make the two norms differ, so using one in place of the other shows;
    an input with a large offset makes a forgotten norm show.
    """
    g = torch.Generator().manual_seed(seed)
    block = MiniMindBlock(0, config).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() == 1 else 0.2) +
                    (1.0 if p.dim() == 1 else 0.0))
    x = torch.randn(2, T, config.hidden_size, generator=g) * 2 + 0.5
    cos, sin = rope_frequencies_for(config, T)
    return block, x, cos, sin


@pytest.mark.parametrize("config", [
    preset("tiny"), preset("tiny", num_key_value_heads=4, hidden_size=48, num_attention_heads=4),
], ids=["gqa", "mha"])
@pytest.mark.exercise("transformer_block")
def test_transformer_block_matches_minimind_block(impl, config):
    """transformer_block computes h = x + attn(norm1(x)); h + mlp(norm2(h)), as MiniMind does."""
    block, x, cos, sin = _block_setup(config, seed=1)
    with torch.no_grad():
        expected = transformer_block(x, block, cos, sin)
        check_close(impl.transformer_block(x, block, cos, sin), expected, atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("transformer_block")
def test_transformer_block_is_causal(impl):
    """Changing the last token leaves every earlier position's output unchanged."""
    block, x, cos, sin = _block_setup(preset("tiny"), seed=2)
    y = x.clone()
    y[:, -1] += 3.0
    with torch.no_grad():
        out_x = impl.transformer_block(x, block, cos, sin)
        out_y = impl.transformer_block(y, block, cos, sin)
    check_close(out_y[:, :-1], out_x[:, :-1], atol=ATOL, rtol=RTOL, what="earlier positions")


@pytest.mark.exercise("transformer_block")
def test_transformer_block_passes_gradients_to_every_weight(impl):
    """Every parameter of the block receives a gradient: all four modules are used."""
    block, x, cos, sin = _block_setup(preset("tiny"), seed=3)
    impl.transformer_block(x, block, cos, sin).pow(2).mean().backward()
    unused = [n for n, p in block.named_parameters() if p.grad is None or not p.grad.any()]
    assert not unused, f"these weights got no gradient, so their module was skipped: {unused}"


def _logits_with_block(model: MiniMindForCausalLM, block_fn, ids: torch.Tensor) -> torch.Tensor:
    """MiniMind's forward pass with every block replaced by block_fn(x, block, cos, sin)."""
    inner = model.model
    B, T = ids.shape
    x = inner.embed_tokens(ids)  # (B, T, C)
    cos, sin = inner.freqs_cos[:T], inner.freqs_sin[:T]  # the model's own RoPE tables
    for block in inner.layers:
        x = block_fn(x, block, cos, sin)
    return model.lm_head(inner.norm(x))  # (B, T, vocab)


@pytest.mark.exercise("transformer_block")
def test_model_running_your_block_gives_minimind_logits(impl):
    """A 4-layer MiniMind whose blocks all run your transformer_block gives MiniMind's logits."""
    config = preset("char-small", vocab_size=81, num_hidden_layers=4, num_key_value_heads=2)
    torch.manual_seed(0)
    model = randomize_weights(MiniMindForCausalLM(config), seed=0)
    ids = torch.randint(0, config.vocab_size, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(ids).logits
        actual = _logits_with_block(model, impl.transformer_block, ids)
    # The tests above pin down which part of the block differs; this one runs it end to end.
    check_close(actual, expected, atol=1e-4, rtol=1e-4, what="logits of the whole model")


def _module_count(config: ModelConfig) -> int:
    model = MiniMindForCausalLM(config)  # the configs here are tiny: milliseconds
    return sum(p.numel() for p in model.parameters())  # a tied matrix is counted once


def _breakdown(config: ModelConfig) -> str:
    """Where the parameters are, from the real module: what a wrong count is compared against."""
    with torch.device("meta"):  # shapes only: MiniMind2 in well under a second
        model = MiniMindForCausalLM(config)
    parts: dict[str, int] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        key = name.split(".")[-2] if ".layers." in name else name.rsplit(".", 1)[0]
        if ".layers." in name and ".mlp." in name:
            key = "mlp." + name.split(".mlp.")[1].split(".")[0]
        parts[key] = parts.get(key, 0) + p.numel()
    return ", ".join(f"{k} {v:,}" for k, v in parts.items())


COUNT_CONFIGS = {
    "tiny": preset("tiny"),
    "untied": preset("tiny", tie_word_embeddings=False),
    "mha": preset("tiny", num_key_value_heads=4),
    "layernorm": preset("tiny", norm="layer"),
    "no-norm": preset("tiny", norm="none"),
    "learned-pos": preset("tiny", position="learned"),
    "gelu": preset("tiny", ffn="gelu", intermediate_size=100),
    "relu": preset("tiny", ffn="relu"),
    "no-ffn": preset("tiny", ffn="none"),
    "moe": preset("tiny", use_moe=True),
    "moe-unshared": preset("tiny", use_moe=True, n_shared_experts=0, n_routed_experts=3),
}


def _check_count(got, want: int, config: ModelConfig, name: str) -> None:
    """got == want, else the diagnosis (a known mistake, when one gives got), the exact numbers
    and where the module's parameters are."""
    __tracebackhide__ = True
    assert isinstance(got, int) and not isinstance(got, bool), (
        f"return a Python int, got {type(got).__name__}")
    try:
        check_close(got, want, atol=0, rtol=0, what="parameter count")
    except WrongAnswer as err:
        raise WrongAnswer(
            f"{err}\n  exactly: found {got:,} vs expected {want:,} (off by {got - want:+,}) for "
            f"{name}\n  where the module's parameters are: {_breakdown(config)}") from None


@pytest.mark.parametrize("name", list(COUNT_CONFIGS))
@pytest.mark.exercise("count_parameters")
def test_count_parameters_equals_the_module_count(impl, name):
    """count_parameters(config) equals the number of parameters MiniMindForCausalLM(config) has."""
    config = COUNT_CONFIGS[name]
    _check_count(impl.count_parameters(config), _module_count(config), config,
                 f"the {name!r} config")


@pytest.mark.parametrize("name, expected", [("minimind2-small", 25_829_888),
                                            ("minimind2", 104_030_976)])
@pytest.mark.exercise("count_parameters")
def test_count_parameters_of_released_minimind2_models(impl, name, expected):
    """MiniMind2-Small has 25,829,888 parameters and MiniMind2 104,030,976."""
    _check_count(impl.count_parameters(preset(name)), expected, preset(name), name)
