"""Lesson 11 (lora): the exercises and their known wrong versions."""
import torch
import torch.nn.functional as F

from minimind.course.mistakes import mistake

REFERENCE = "minimind.lora"
EXERCISES = ("lora_init", "lora_linear", "merge_lora")
LORA_STD = 0.02


def _rank_ok(rank):
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be an int >= 1, got {rank!r}")


@mistake("lora_init", "A is zero and B random (the roles swapped)",
         hint="B starts at zero so the update is zero; A is the random one, so B's gradient "
              "is not zero and training can start")
def init_swapped(in_features, out_features, rank, std=LORA_STD, generator=None):
    _rank_ok(rank)
    return torch.zeros(rank, in_features), torch.randn(out_features, rank,
                                                       generator=generator) * std


@mistake("lora_init", "both A and B start at zero",
         hint="with both at zero every gradient of A and B is zero and the adapter never "
              "moves; draw A at random")
def init_both_zero(in_features, out_features, rank, std=LORA_STD, generator=None):
    _rank_ok(rank)
    return torch.zeros(rank, in_features), torch.zeros(out_features, rank)


@mistake("lora_init", "A drawn with std 1 instead of std",
         hint="scale the standard normal draw by std")
def init_unit_std(in_features, out_features, rank, std=LORA_STD, generator=None):
    _rank_ok(rank)
    return torch.randn(rank, in_features, generator=generator), torch.zeros(out_features, rank)


@mistake("lora_init", "A has shape (in, rank), transposed",
         hint="A maps the input down to the rank: shape (rank, in_features)")
def init_transposed(in_features, out_features, rank, std=LORA_STD, generator=None):
    _rank_ok(rank)
    a = torch.randn(in_features, rank, generator=generator) * std
    return a, torch.zeros(out_features, rank)


@mistake("lora_init", "rank < 1 accepted",
         hint="a rank of 0 or less is no adapter: raise a ValueError")
def init_no_check(in_features, out_features, rank, std=LORA_STD, generator=None):
    a = torch.randn(max(rank, 0), in_features, generator=generator) * std
    return a, torch.zeros(out_features, max(rank, 0))


@mistake("lora_linear", "update not scaled (alpha / r missing)",
         hint="multiply the low-rank update by alpha divided by the rank")
def linear_no_scale(x, weight, lora_A, lora_B, alpha, bias=None):
    return F.linear(x, weight, bias) + F.linear(F.linear(x, lora_A), lora_B)


@mistake("lora_linear", "scaled by alpha, not alpha / r",
         hint="the scale is alpha over the rank, so changing the rank does not change the "
              "update's size at init of training")
def linear_alpha_only(x, weight, lora_A, lora_B, alpha, bias=None):
    return F.linear(x, weight, bias) + alpha * F.linear(F.linear(x, lora_A), lora_B)


@mistake("lora_linear", "scaled by r / alpha (inverted)",
         hint="the scale is alpha divided by the rank, not the rank divided by alpha")
def linear_inverted_scale(x, weight, lora_A, lora_B, alpha, bias=None):
    scale = lora_A.shape[0] / alpha
    return F.linear(x, weight, bias) + scale * F.linear(F.linear(x, lora_A), lora_B)


@mistake("lora_linear", "bias dropped",
         hint="the base layer's bias stays: x W^T + bias, then the update")
def linear_no_bias(x, weight, lora_A, lora_B, alpha, bias=None):
    scale = alpha / lora_A.shape[0]
    return F.linear(x, weight) + scale * F.linear(F.linear(x, lora_A), lora_B)


@mistake("lora_linear", "only the update, the frozen base layer left out",
         hint="LoRA adds to the base layer's output; it does not replace it")
def linear_update_only(x, weight, lora_A, lora_B, alpha, bias=None):
    scale = alpha / lora_A.shape[0]
    return scale * F.linear(F.linear(x, lora_A), lora_B)


@mistake("merge_lora", "update not scaled (alpha / r missing)",
         hint="the merged weight adds the same scaled update the adapter computes")
def merge_no_scale(weight, lora_A, lora_B, alpha):
    return weight + lora_B @ lora_A


@mistake("merge_lora", "the update transposed, (B @ A)^T",
         hint="W has shape (out, in); B @ A already has that shape: add it as it is")
def merge_transposed(weight, lora_A, lora_B, alpha):
    return weight + (alpha / lora_A.shape[0]) * (lora_B @ lora_A).T


@mistake("merge_lora", "the update subtracted",
         hint="the adapter adds its update to the base layer's output, so the merged weight "
              "adds it too")
def merge_subtracted(weight, lora_A, lora_B, alpha):
    return weight - (alpha / lora_A.shape[0]) * (lora_B @ lora_A)


@mistake("merge_lora", "scaled by alpha, not alpha / r",
         hint="use the same scale as lora_linear: alpha over the rank")
def merge_alpha_only(weight, lora_A, lora_B, alpha):
    return weight + alpha * (lora_B @ lora_A)
