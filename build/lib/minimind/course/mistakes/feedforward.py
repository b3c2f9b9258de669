"""Lesson 04 (feed-forward): the exercises and their known wrong versions."""
import math

import torch
import torch.nn.functional as F

from minimind.course.mistakes import mistake
from minimind.ffn import silu

REFERENCE = "minimind.ffn"
EXERCISES = ("silu", "swiglu", "intermediate_size")


# --- silu -----------------------------------------------------------------------------------


@mistake("silu", "sigmoid(x) alone, not multiplied by x",
         hint="the sigmoid is a gate: multiply it by the input itself")
def silu_sigmoid_only(x):
    return torch.sigmoid(x)


@mistake("silu", "sign flipped inside the sigmoid",
         hint="the gate opens for large positive x: the sigmoid takes x, not -x")
def silu_negated_sigmoid(x):
    return x * torch.sigmoid(-x)


@mistake("silu", "GELU, a different smooth ReLU",
         hint="SiLU gates x by a sigmoid of x, not by the Gaussian CDF")
def silu_is_gelu(x):
    return F.gelu(x)


@mistake("silu", "ReLU instead of SiLU",
         hint="SiLU is smooth and dips below zero for negative x; ReLU is flat zero there")
def silu_is_relu(x):
    return torch.relu(x)


@mistake("silu", "x * tanh(x) instead of x times a sigmoid",
         hint="the gate is a sigmoid (between 0 and 1), not tanh (between -1 and 1)")
def silu_tanh_gate(x):
    return x * torch.tanh(x)


@mistake("silu", "sigmoid written as exp(x) / (1 + exp(x)), NaN for large x",
         hint="exp(1e4) overflows to inf and inf / inf is NaN: use torch.sigmoid")
def silu_unstable_sigmoid(x):
    e = torch.exp(x)
    return x * e / (1 + e)


@mistake("silu", "computed in float32 and returned as float32",
         hint="keep the input's dtype: compute with torch ops on x itself (or cast back)")
def silu_forgets_dtype(x):
    x32 = x.float()
    return x32 * torch.sigmoid(x32)


# --- swiglu ---------------------------------------------------------------------------------


@mistake("swiglu", "silu applied to the up projection instead of the gate",
         hint="only the gate projection goes through silu; the up projection stays linear")
def swiglu_silu_on_up(x, w_gate, w_up, w_down):
    return ((x @ w_gate.T) * silu(x @ w_up.T)) @ w_down.T


@mistake("swiglu", "silu applied after the product",
         hint="apply silu to the gate projection alone, then multiply by the up projection")
def swiglu_silu_after_product(x, w_gate, w_up, w_down):
    return silu((x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


@mistake("swiglu", "no activation at all (a bilinear layer)",
         hint="the gate projection goes through silu before the product")
def swiglu_bilinear(x, w_gate, w_up, w_down):
    return ((x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


@mistake("swiglu", "sigmoid gate (the original GLU) instead of silu",
         hint="SwiGLU's gate is silu (the sigmoid times its input), not the bare sigmoid")
def swiglu_sigmoid_gate(x, w_gate, w_up, w_down):
    return (torch.sigmoid(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


@mistake("swiglu", "GELU gate (GEGLU) instead of silu",
         hint="SwiGLU gates with silu; GELU makes it the GEGLU variant")
def swiglu_gelu_gate(x, w_gate, w_up, w_down):
    return (F.gelu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


@mistake("swiglu", "silu on both projections",
         hint="only the gate goes through silu; the up projection stays linear")
def swiglu_silu_on_both(x, w_gate, w_up, w_down):
    return (silu(x @ w_gate.T) * silu(x @ w_up.T)) @ w_down.T


@mistake("swiglu", "gate and up added instead of multiplied",
         hint="the gate scales the up projection unit by unit: a product, not a sum")
def swiglu_added(x, w_gate, w_up, w_down):
    return (silu(x @ w_gate.T) + (x @ w_up.T)) @ w_down.T


# --- intermediate_size ----------------------------------------------------------------------


@mistake("intermediate_size", "rounded DOWN to the multiple; MiniMind rounds up",
         hint="round up: the width is the smallest multiple that is at least 8/3 of hidden")
def width_floor(hidden_size, multiple_of=64):
    return multiple_of * (int(hidden_size * 8 / 3) // multiple_of)


@mistake("intermediate_size", "rounded to the NEAREST multiple; MiniMind rounds up",
         hint="round up, never down: the width must not fall below 8/3 of hidden")
def width_nearest(hidden_size, multiple_of=64):
    return multiple_of * round(hidden_size * 8 / 3 / multiple_of)


@mistake("intermediate_size", "not rounded to a multiple at all",
         hint="after taking 8/3 of hidden, round up to a multiple of multiple_of")
def width_unrounded(hidden_size, multiple_of=64):
    return int(hidden_size * 8 / 3)


@mistake("intermediate_size", "the 4x rule of the classic GELU MLP, not 8/3",
         hint="SwiGLU has three matrices, so its width is 2/3 of the classic MLP's 4x")
def width_four_times(hidden_size, multiple_of=64):
    return multiple_of * math.ceil(4 * hidden_size / multiple_of)


@mistake("intermediate_size", "a whole multiple added even when already divisible",
         hint="a width that is already a multiple stays as it is: round up only what is not")
def width_always_adds(hidden_size, multiple_of=64):
    return multiple_of * (int(hidden_size * 8 / 3) // multiple_of + 1)


@mistake("intermediate_size", "multiple_of ignored (64 hard-coded)",
         hint="round to the multiple_of the caller passes, not always to 64")
def width_hard_coded_64(hidden_size, multiple_of=64):
    return 64 * ((int(hidden_size * 8 / 3) + 63) // 64)


@mistake("intermediate_size", "returns a float",
         hint="a width is a count of units: return a Python int, not the float your "
              "arithmetic produced")
def width_float(hidden_size, multiple_of=64):
    return float(multiple_of * math.ceil(int(hidden_size * 8 / 3) / multiple_of))
