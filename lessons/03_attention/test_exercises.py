"""Exercise tests for lesson 03: each passes on a right answer and names the mistake otherwise."""
import pytest
import torch
import torch.nn.functional as F

from minimind.attention import repeat_kv, scaled_dot_product_attention, softmax
from minimind.course import check_close
from minimind.lab.measure import largest_intermediate

ATOL, RTOL = 1e-5, 1e-5


def _qkv(seed: int, B=2, H=3, Tq=7, Tk=None, D=8, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    Tk = Tk or Tq
    q = torch.randn(B, H, Tq, D, generator=g) * scale
    k = torch.randn(B, H, Tk, D, generator=g) * scale
    v = torch.randn(B, H, Tk, D, generator=g)
    return q, k, v


# --- softmax -------------------------------------------------------------------------------------

@pytest.mark.exercise("softmax")
def test_softmax_matches_reference(impl):
    """softmax(x) = exp(x) / sum(exp(x)) along the last dim."""
    x = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(0)) * 3
    check_close(impl.softmax(x), softmax(x), atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("softmax")
def test_softmax_of_logits_of_1e4_is_finite(impl):
    """Logits of +-1e4 give finite probabilities: the max is subtracted before exp."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, generator=g) * 100
    x[:2] += 1e4  # rows near +1e4: exp overflows unless the row's max is subtracted
    x[2:] -= 1e4  # rows near -1e4: exp underflows to 0 unless the row's own max is used
    check_close(impl.softmax(x), softmax(x), atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("softmax")
def test_softmax_is_invariant_to_adding_a_constant(impl):
    """softmax(x + c) == softmax(x): only differences between logits matter."""
    x = torch.randn(5, 9, generator=torch.Generator().manual_seed(2))
    check_close(impl.softmax(x + 30.0), softmax(x), atol=ATOL, rtol=RTOL,
                what="softmax(x + 30)")


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.exercise("softmax")
def test_softmax_normalises_along_the_dim_it_is_given(impl, dim):
    """softmax(x, dim) sums to one along `dim`, whichever dim that is."""
    x = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(3 + dim)) * 2
    check_close(impl.softmax(x, dim=dim), softmax(x, dim=dim), atol=ATOL, rtol=RTOL)


# --- causal_mask ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seq_len", [1, 2, 6])
@pytest.mark.exercise("causal_mask")
def test_causal_mask_allows_self_and_past_only(impl, seq_len):
    """mask[i, j] is True exactly when j <= i: each position sees itself and the past."""
    ones = torch.ones(seq_len, seq_len, dtype=torch.bool)
    check_close(impl.causal_mask(seq_len), ones.tril(), atol=0, rtol=0,
                what=f"causal_mask({seq_len})")


# --- scaled_dot_product_attention ----------------------------------------------------------------

@pytest.mark.exercise("scaled_dot_product_attention")
def test_scaled_dot_product_attention_causal_matches_pytorch(impl):
    """Causal attention equals PyTorch's F.scaled_dot_product_attention(is_causal=True)."""
    q, k, v = _qkv(0)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    check_close(impl.scaled_dot_product_attention(q, k, v, causal=True), expected, atol=ATOL,
                rtol=RTOL)


@pytest.mark.exercise("scaled_dot_product_attention")
def test_scaled_dot_product_attention_first_position_returns_its_own_value(impl):
    """Under the causal mask position 0 sees only itself, so its output is v[..., 0, :]."""
    q, k, v = _qkv(1, Tq=5)
    out = impl.scaled_dot_product_attention(q, k, v, causal=True)
    check_close(out[..., 0, :], v[..., 0, :], atol=ATOL, rtol=RTOL, what="output at position 0")


@pytest.mark.exercise("scaled_dot_product_attention")
def test_scaled_dot_product_attention_non_causal_matches_pytorch(impl):
    """With causal=False every query attends to every key, as in PyTorch's SDPA."""
    q, k, v = _qkv(2, Tq=4, Tk=6)
    expected = F.scaled_dot_product_attention(q, k, v)
    check_close(impl.scaled_dot_product_attention(q, k, v, causal=False), expected, atol=ATOL,
                rtol=RTOL)


@pytest.mark.exercise("scaled_dot_product_attention")
def test_scaled_dot_product_attention_new_queries_after_a_cache_see_the_whole_prefix(impl):
    """With 3 queries and 8 keys, query i sits at position 5 + i and sees keys 0..5 + i."""
    q, k, v = _qkv(3, Tq=3, Tk=8)
    expected = scaled_dot_product_attention(q, k, v, causal=True)
    check_close(impl.scaled_dot_product_attention(q, k, v, causal=True), expected, atol=ATOL,
                rtol=RTOL)


# --- repeat_kv -----------------------------------------------------------------------------------

@pytest.mark.exercise("repeat_kv")
def test_repeat_kv_repeats_each_kv_head_n_rep_times_in_a_row(impl):
    """Query head h reads kv head h // n_rep: heads come out as 0, 0, 1, 1, 2, 2 for n_rep=2."""
    x = torch.randn(2, 5, 3, 4, generator=torch.Generator().manual_seed(0))
    check_close(impl.repeat_kv(x, 2), repeat_kv(x, 2), atol=0, rtol=0)


@pytest.mark.parametrize("n_rep", [1, 4])
@pytest.mark.exercise("repeat_kv")
def test_repeat_kv_output_head_h_is_input_head_h_div_n_rep(impl, n_rep):
    """Every output head h equals input kv head h // n_rep, for n_rep = 1 (no-op) and 4."""
    x = torch.randn(1, 3, 2, 6, generator=torch.Generator().manual_seed(n_rep))
    out = impl.repeat_kv(x, n_rep)
    expected = torch.stack([x[:, :, h // n_rep] for h in range(2 * n_rep)], dim=2)
    check_close(out, expected, atol=0, rtol=0, what=f"repeat_kv(x, {n_rep})")


# --- tiled_attention -----------------------------------------------------------------------------

@pytest.mark.parametrize("block_size", [1, 4, 5, 16, 64])
@pytest.mark.exercise("tiled_attention")
def test_tiled_attention_equals_naive_attention_for_any_block_size(impl, block_size):
    """Tiled attention equals naive attention whether or not block_size divides the sequence."""
    q, k, v = _qkv(10 + block_size, Tq=16)
    expected = scaled_dot_product_attention(q, k, v, causal=True)
    check_close(impl.tiled_attention(q, k, v, block_size), expected, atol=ATOL,
                rtol=RTOL)


@pytest.mark.exercise("tiled_attention")
def test_tiled_attention_with_scores_in_the_hundreds_is_finite_and_exact(impl):
    """Scores of several hundred overflow exp in float32 unless the running max is subtracted."""
    q, k, v = _qkv(20, Tq=12, scale=12.0)  # q.k / sqrt(8) reaches several hundred
    expected = scaled_dot_product_attention(q, k, v, causal=True)
    check_close(impl.tiled_attention(q, k, v, 4), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.exercise("tiled_attention")
def test_tiled_attention_non_causal_and_after_a_cache_match_naive(impl):
    """causal=False, and causal with fewer queries than keys, both equal naive attention."""
    q, k, v = _qkv(21, Tq=9, Tk=9)
    check_close(impl.tiled_attention(q, k, v, 4, causal=False),
                scaled_dot_product_attention(q, k, v, causal=False), atol=ATOL, rtol=RTOL,
                what="non-causal output")
    q, k, v = _qkv(22, Tq=3, Tk=11)
    check_close(impl.tiled_attention(q, k, v, 4, causal=True),
                scaled_dot_product_attention(q, k, v, causal=True), atol=ATOL, rtol=RTOL,
                what="output for 3 queries after 8 cached keys")


@pytest.mark.exercise("tiled_attention")
def test_tiled_attention_never_creates_a_tensor_as_large_as_the_score_matrix(impl):
    """No tensor created inside tiled_attention exceeds batch x heads x seq x max(block, d)."""
    B, H, T, D, block = 2, 4, 256, 16, 32
    q, k, v = _qkv(23, B=B, H=H, Tq=T, D=D)
    impl.tiled_attention(q, k, v, block)  # a stub stops here, before the (slow) measurement
    largest, op = largest_intermediate(lambda: impl.tiled_attention(q, k, v, block))
    bound = B * H * T * max(block, D) * q.element_size()
    full = B * H * T * T * q.element_size()
    assert largest <= bound, (
        f"the largest tensor created was {largest:,} bytes (by {op}); tiles of {block} keys need "
        f"at most {bound:,}, the full score matrix is {full:,}. Compute scores one key block "
        f"at a time, never q @ k.transpose(-2, -1) over all keys"
    )
