"""Lesson 02 (position encoding): the exercises and their known wrong versions."""
import torch

from minimind.course.mistakes import mistake
from minimind.rope import rotate_half

REFERENCE = "minimind.rope"
EXERCISES = ("rope_frequencies", "rotate_half", "apply_rope", "ntk_scaled_theta")


# --- rope_frequencies ---------------------------------------------------------------------------

def _inv_freq(head_dim, theta, exponent_step=2, dtype=torch.float64):
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    i = torch.arange(0, head_dim // 2, dtype=dtype)
    return 1.0 / theta ** (exponent_step * i / head_dim)


def _positions(max_len, start=0, dtype=torch.float64):
    return torch.arange(start, start + max_len, dtype=dtype)


def _half_split(angles):
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


@mistake("rope_frequencies", "interleaved layout (RoFormer's pairs 2i, 2i+1)",
         hint="MiniMind pairs column i with column i + head_dim/2: the second half of each row "
              "repeats the first half, it does not alternate column by column")
def freqs_interleaved(head_dim, max_len, theta=1e6):
    angles = torch.outer(_positions(max_len), _inv_freq(head_dim, theta))
    angles = angles.repeat_interleave(2, dim=-1)
    return angles.cos().float(), angles.sin().float()


@mistake("rope_frequencies", "exponent i/D instead of 2i/D",
         hint="pair i's exponent counts dimensions, two per pair: with head_dim 64 the last "
              "pair's exponent is 62/64, not 31/64")
def freqs_exponent_i_over_d(head_dim, max_len, theta=1e6):
    inv = _inv_freq(head_dim, theta, exponent_step=1)
    return _half_split(torch.outer(_positions(max_len), inv))


@mistake("rope_frequencies", "angles computed in float32",
         hint="build positions and frequencies in float64 and cast only the finished cos and "
              "sin tables to float32; a float32 angle of thousands of radians loses ~1e-3")
def freqs_float32_angles(head_dim, max_len, theta=1e6):
    inv = _inv_freq(head_dim, theta, dtype=torch.float32)
    return _half_split(torch.outer(_positions(max_len, dtype=torch.float32), inv))


@mistake("rope_frequencies", "theta argument ignored (1e4 hard-coded)",
         hint="use the theta the caller passes (its default is MiniMind's 1e6); do not write "
              "a base into the formula")
def freqs_theta_hard_coded(head_dim, max_len, theta=1e6):
    return _half_split(torch.outer(_positions(max_len), _inv_freq(head_dim, 1e4)))


@mistake("rope_frequencies", "cos and sin returned in the wrong order",
         hint="return the cosine table first, then the sine table")
def freqs_swapped(head_dim, max_len, theta=1e6):
    cos, sin = _half_split(torch.outer(_positions(max_len), _inv_freq(head_dim, theta)))
    return sin, cos


@mistake("rope_frequencies", "positions counted from 1",
         hint="the first row is position 0, whose angle is 0 (cos 1, sin 0): the first token "
              "is not rotated")
def freqs_from_one(head_dim, max_len, theta=1e6):
    return _half_split(torch.outer(_positions(max_len, start=1), _inv_freq(head_dim, theta)))


@mistake("rope_frequencies", "odd head_dim silently accepted",
         hint="an odd head_dim has no pairs to rotate: raise ValueError and name the value")
def freqs_no_check(head_dim, max_len, theta=1e6):
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    return _half_split(torch.outer(_positions(max_len), inv))


# --- rotate_half --------------------------------------------------------------------------------

def _halves(x):
    h = x.shape[-1] // 2
    return x[..., :h], x[..., h:]


@mistake("rotate_half", "negation forgotten: (x2, x1)",
         hint="a 90-degree turn of (a, b) is (-b, a): one of the two halves changes sign")
def rotate_no_negation(x):
    x1, x2 = _halves(x)
    return torch.cat([x2, x1], dim=-1)


@mistake("rotate_half", "turns the other way: (x2, -x1)",
         hint="the turn must be counter-clockwise, (a, b) -> (-b, a): negate the half that "
              "moves to the front")
def rotate_other_way(x):
    x1, x2 = _halves(x)
    return torch.cat([x2, -x1], dim=-1)


@mistake("rotate_half", "interleaved pairs (RoFormer's layout)",
         hint="MiniMind's pairs are (i, i + head_dim/2): split the last dim into its two "
              "halves, not into even and odd columns")
def rotate_interleaved(x):
    return torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).flatten(-2)


@mistake("rotate_half", "halves kept in place, first half negated: (-x1, x2)",
         hint="the halves swap places as well as one of them changing sign")
def rotate_negate_first(x):
    x1, x2 = _halves(x)
    return torch.cat([-x1, x2], dim=-1)


# --- apply_rope ---------------------------------------------------------------------------------

def _validate(x, cos):
    B, T, H, D = x.shape
    if cos.shape[1] != D or D % 2:
        raise ValueError(f"head_dim {D} vs table {cos.shape[1]}")
    if cos.shape[0] < T:
        raise ValueError(f"sequence {T} longer than table {cos.shape[0]}")
    return T


@mistake("apply_rope", "rotated by minus the angle",
         hint="the rotated-by-90-degrees copy is added, weighted by sin, not subtracted")
def apply_minus_angle(x, cos, sin):
    T = _validate(x, cos)
    x32 = x.float()
    return (x32 * cos[:T, None] - rotate_half(x32) * sin[:T, None]).to(x.dtype)


@mistake("apply_rope", "rotate_half(x) and x swapped",
         hint="x itself is weighted by cos and its 90-degree turn by sin; at angle 0 the "
              "output must be x")
def apply_swapped_terms(x, cos, sin):
    T = _validate(x, cos)
    x32 = x.float()
    return (rotate_half(x32) * cos[:T, None] + x32 * sin[:T, None]).to(x.dtype)


@mistake("apply_rope", "arithmetic in the input's dtype",
         hint="upcast x with x.float() before multiplying by the tables, and cast the result "
              "back to x.dtype")
def apply_half_arithmetic(x, cos, sin):
    T = _validate(x, cos)
    c, s = cos[:T, None].to(x.dtype), sin[:T, None].to(x.dtype)
    return x * c + rotate_half(x) * s


@mistake("apply_rope", "returns float32 for a half-precision input",
         hint="return the input's dtype: cast back with .to(x.dtype) at the end")
def apply_forgets_cast_back(x, cos, sin):
    T = _validate(x, cos)
    x32 = x.float()
    return x32 * cos[:T, None] + rotate_half(x32) * sin[:T, None]


@mistake("apply_rope", "tables broadcast over heads instead of positions",
         hint="x is (batch, seq, heads, head_dim): give the (seq, head_dim) tables a size-1 "
              "heads axis so their seq lines up with dim 1 of x")
def apply_broadcast_over_heads(x, cos, sin):
    T = _validate(x, cos)
    x32 = x.float()
    return (x32 * cos[:T] + rotate_half(x32) * sin[:T]).to(x.dtype)


@mistake("apply_rope", "the last seq rows of the tables used instead of the first",
         hint="position t uses row t of the tables: take the first seq rows")
def apply_last_rows(x, cos, sin):
    T = _validate(x, cos)
    x32 = x.float()
    return (x32 * cos[-T:, None] + rotate_half(x32) * sin[-T:, None]).to(x.dtype)


@mistake("apply_rope", "no size checks (a short table fails deep inside broadcasting)",
         hint="check the sizes first and raise ValueError naming both: the sequence against "
              "the table's rows, the head_dim against the table's columns and for oddness")
def apply_unchecked(x, cos, sin):
    T = x.shape[1]
    x32 = x.float()
    return (x32 * cos[:T, None] + rotate_half(x32) * sin[:T, None]).to(x.dtype)


# --- ntk_scaled_theta ---------------------------------------------------------------------------

def _check_ntk(scale, head_dim):
    if head_dim <= 2:
        raise ValueError(f"NTK scaling needs head_dim > 2, got {head_dim}")
    if scale <= 0:
        raise ValueError(f"NTK scale must be > 0, got {scale}")


@mistake("ntk_scaled_theta", "base multiplied by scale (the slowest pair slows by less)",
         hint="the slowest pair's frequency is theta to the power -(D-2)/D: find the factor on "
              "theta that divides that frequency by exactly `scale`")
def ntk_times_scale(theta, scale, head_dim):
    _check_ntk(scale, head_dim)
    return theta * scale


@mistake("ntk_scaled_theta", "exponent inverted: scale^((D-2)/D)",
         hint="check your exponent on scale: raising the new base to (D-2)/D must give "
              "scale times theta^((D-2)/D), not less")
def ntk_inverted_exponent(theta, scale, head_dim):
    _check_ntk(scale, head_dim)
    return theta * scale ** ((head_dim - 2) / head_dim)


@mistake("ntk_scaled_theta", "base divided by scale (frequencies sped up)",
         hint="a larger base turns every pair slower; to extend the context the base grows")
def ntk_divided(theta, scale, head_dim):
    _check_ntk(scale, head_dim)
    return theta / scale ** (head_dim / (head_dim - 2))


@mistake("ntk_scaled_theta", "pair count D/2 used where head_dim D belongs",
         hint="the exponent of the slowest pair is (head_dim - 2) / head_dim, in dimensions, "
              "not in pairs")
def ntk_pairs_for_dims(theta, scale, head_dim):
    _check_ntk(scale, head_dim)
    n = head_dim // 2
    return theta * scale ** (n / (n - 2))


@mistake("ntk_scaled_theta", "no input checks",
         hint="raise ValueError naming the value for head_dim <= 2 (no slow pair) and for "
              "scale <= 0")
def ntk_unchecked(theta, scale, head_dim):
    return theta * abs(scale) ** (head_dim / max(head_dim - 2, 1))
