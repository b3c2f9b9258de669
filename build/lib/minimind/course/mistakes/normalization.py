"""Lesson 01 (normalization): the exercises and their known wrong versions."""
import torch

from minimind.course.mistakes import mistake
from minimind.norm import layer_norm

REFERENCE = "minimind.norm"
EXERCISES = ("rms_norm", "layer_norm", "pre_norm_residual", "post_norm_residual")


def _rms(x32, eps):
    return torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)


@mistake("rms_norm", "eps added outside the sqrt",
         hint="eps belongs under the root, added to the mean square; outside it barely acts "
              "on tiny rows")
def rms_eps_outside_sqrt(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 / (x32.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight).to(x.dtype)


@mistake("rms_norm", "divided by the mean instead of the root mean square",
         hint="square the entries before averaging, then take the root")
def rms_mean_not_mean_square(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.mean(-1, keepdim=True).abs() + eps) * weight).to(x.dtype)


@mistake("rms_norm", "normalised over the first axis",
         hint="each vector is the last dim: reduce over dim=-1 with keepdim=True")
def rms_wrong_axis(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(0, keepdim=True) + eps) * weight).to(x.dtype)


@mistake("rms_norm", "weight forgotten",
         hint="after normalising, multiply by the learned per-feature weight")
def rms_no_weight(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 * _rms(x32, eps)).to(x.dtype)


@mistake("rms_norm", "arithmetic in the input's dtype (float16 squares overflow)",
         hint="upcast with x.float() before squaring, and cast the result back to x.dtype")
def rms_half_arithmetic(x, weight, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.to(x.dtype)


@mistake("rms_norm", "returns float32 for a half-precision input",
         hint="return the input's dtype: .to(x.dtype) at the end")
def rms_forgets_cast_back(x, weight, eps=1e-5):
    x32 = x.float()
    return x32 * _rms(x32, eps) * weight


@mistake("rms_norm", "no eps at all",
         hint="a zero row gives 0 / 0 = NaN without eps under the root")
def rms_no_eps(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 / x32.pow(2).mean(-1, keepdim=True).sqrt() * weight).to(x.dtype)


@mistake("rms_norm", "eps hard-coded instead of the eps argument",
         hint="use the eps the caller passes; do not write 1e-5 into the formula")
def rms_eps_hard_coded(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 * _rms(x32, 1e-5) * weight).to(x.dtype)


@mistake("rms_norm", "mean subtracted (that is LayerNorm)",
         hint="RMSNorm does not centre: no mean subtraction")
def rms_centred(x, weight, eps=1e-5):
    return layer_norm(x.float(), weight, torch.zeros_like(weight), eps).to(x.dtype)


@mistake("layer_norm", "unbiased variance (torch.var's default)",
         hint="LayerNorm divides by N: var(..., unbiased=False)")
def ln_unbiased_var(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight + bias


@mistake("layer_norm", "eps added outside the sqrt",
         hint="eps belongs under the root, added to the variance")
def ln_eps_outside_sqrt(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    std = x.var(-1, keepdim=True, unbiased=False).sqrt()
    return (x - mean) / (std + eps) * weight + bias


@mistake("layer_norm", "mean not subtracted (that is RMSNorm)",
         hint="LayerNorm centres each row first: subtract its mean")
def ln_no_centering(x, weight, bias, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight + bias


@mistake("layer_norm", "bias forgotten", hint="after scaling by weight, add the bias")
def ln_no_bias(x, weight, bias, eps=1e-5):
    return layer_norm(x, weight, torch.zeros_like(bias), eps)


@mistake("layer_norm", "weight forgotten",
         hint="scale the normalised row by the per-feature weight before adding the bias")
def ln_no_weight(x, weight, bias, eps=1e-5):
    return layer_norm(x, torch.ones_like(weight), bias, eps)


@mistake("layer_norm", "normalised over the first axis",
         hint="each vector is the last dim: reduce over dim=-1 with keepdim=True")
def ln_wrong_axis(x, weight, bias, eps=1e-5):
    mean = x.mean(0, keepdim=True)
    var = x.var(0, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


@mistake("pre_norm_residual", "norm forgotten",
         hint="the sublayer reads the normalised x")
def pre_no_norm(x, sublayer, norm):
    return x + sublayer(x)


@mistake("pre_norm_residual", "skip path taken from the normalised input",
         hint="the skip path carries the raw x; only the sublayer's input is normalised")
def pre_normed_skip(x, sublayer, norm):
    h = norm(x)
    return h + sublayer(h)


@mistake("pre_norm_residual", "Post-LN written instead",
         hint="Pre-LN normalises the sublayer's input, not the sum")
def pre_is_post(x, sublayer, norm):
    return norm(x + sublayer(x))


@mistake("pre_norm_residual", "residual forgotten",
         hint="add the sublayer's output to x: that sum is the residual connection")
def pre_no_residual(x, sublayer, norm):
    return sublayer(norm(x))


@mistake("post_norm_residual", "Pre-LN written instead",
         hint="Post-LN normalises the sum x + sublayer(x), after the addition")
def post_is_pre(x, sublayer, norm):
    return x + sublayer(norm(x))


@mistake("post_norm_residual", "norm applied to the sublayer's output only",
         hint="the norm sits on the residual path: it takes the whole sum")
def post_norms_branch(x, sublayer, norm):
    return x + norm(sublayer(x))


@mistake("post_norm_residual", "residual forgotten",
         hint="add x back before normalising")
def post_no_residual(x, sublayer, norm):
    return norm(sublayer(x))


@mistake("post_norm_residual", "norm forgotten", hint="normalise the sum x + sublayer(x)")
def post_no_norm(x, sublayer, norm):
    return x + sublayer(x)
