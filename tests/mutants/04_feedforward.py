"""Plausible wrong answers to lesson 04; tests/test_mutants.py proves each one is caught."""
import math

import torch
import torch.nn.functional as F

from minimind.course import mutant
from minimind.ffn import silu


@mutant("silu", "sigmoid alone, not multiplied by x")
def silu_sigmoid_only(x):
    return torch.sigmoid(x)


@mutant("silu", "sign flipped inside the sigmoid")
def silu_negated_sigmoid(x):
    return x * torch.sigmoid(-x)


@mutant("silu", "GELU instead of SiLU")
def silu_is_gelu(x):
    return F.gelu(x)


@mutant("silu", "ReLU instead of SiLU")
def silu_is_relu(x):
    return torch.relu(x)


@mutant("silu", "exp(x) / (1 + exp(x)) overflows to NaN")
def silu_unstable_sigmoid(x):
    e = torch.exp(x)
    return x * e / (1 + e)


@mutant("silu", "computed in float32 and returned as float32")
def silu_forgets_dtype(x):
    x32 = x.float()
    return x32 * torch.sigmoid(x32)


@mutant("swiglu", "silu on the up projection instead of the gate")
def swiglu_silu_on_up(x, w_gate, w_up, w_down):
    return ((x @ w_gate.T) * silu(x @ w_up.T)) @ w_down.T


@mutant("swiglu", "silu applied after the product")
def swiglu_silu_after_product(x, w_gate, w_up, w_down):
    return silu((x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


@mutant("swiglu", "no activation (bilinear)")
def swiglu_bilinear(x, w_gate, w_up, w_down):
    return ((x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


@mutant("swiglu", "sigmoid gate (GLU) instead of silu")
def swiglu_sigmoid_gate(x, w_gate, w_up, w_down):
    return (torch.sigmoid(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


@mutant("swiglu", "gate and up added instead of multiplied")
def swiglu_added(x, w_gate, w_up, w_down):
    return (silu(x @ w_gate.T) + (x @ w_up.T)) @ w_down.T


@mutant("intermediate_size", "rounded down to the multiple")
def width_floor(hidden_size, multiple_of=64):
    return multiple_of * (int(hidden_size * 8 / 3) // multiple_of)


@mutant("intermediate_size", "rounded to the nearest multiple")
def width_nearest(hidden_size, multiple_of=64):
    return multiple_of * round(hidden_size * 8 / 3 / multiple_of)


@mutant("intermediate_size", "not rounded at all")
def width_unrounded(hidden_size, multiple_of=64):
    return int(hidden_size * 8 / 3)


@mutant("intermediate_size", "the 4x rule of the GELU MLP")
def width_four_times(hidden_size, multiple_of=64):
    return multiple_of * math.ceil(4 * hidden_size / multiple_of)


@mutant("intermediate_size", "a whole multiple added even when already divisible")
def width_always_adds(hidden_size, multiple_of=64):
    return multiple_of * (int(hidden_size * 8 / 3) // multiple_of + 1)


@mutant("intermediate_size", "multiple_of ignored (64 hard-coded)")
def width_hard_coded_64(hidden_size, multiple_of=64):
    return 64 * ((int(hidden_size * 8 / 3) + 63) // 64)


@mutant("intermediate_size", "returns a float")
def width_float(hidden_size, multiple_of=64):
    return float(multiple_of * math.ceil(int(hidden_size * 8 / 3) / multiple_of))
