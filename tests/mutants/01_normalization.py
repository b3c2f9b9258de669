"""Plausible wrong answers to lesson 01; tests/test_mutants.py proves each one is caught."""
import torch

from minimind.course import mutant
from minimind.norm import layer_norm


@mutant("rms_norm", "eps added outside the sqrt")
def rms_eps_outside_sqrt(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 / (x32.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight).to(x.dtype)


@mutant("rms_norm", "mean instead of mean of squares")
def rms_mean_not_mean_square(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.mean(-1, keepdim=True).abs() + eps) * weight).to(x.dtype)


@mutant("rms_norm", "normalised over the first axis")
def rms_wrong_axis(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(0, keepdim=True) + eps) * weight).to(x.dtype)


@mutant("rms_norm", "weight forgotten")
def rms_no_weight(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


@mutant("rms_norm", "arithmetic in the input's dtype (float16 overflows)")
def rms_half_arithmetic(x, weight, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.to(x.dtype)


@mutant("rms_norm", "returns float32 for a float16 input")
def rms_forgets_cast_back(x, weight, eps=1e-5):
    x32 = x.float()
    return x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps) * weight


@mutant("rms_norm", "no eps at all")
def rms_no_eps(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 / x32.pow(2).mean(-1, keepdim=True).sqrt() * weight).to(x.dtype)


@mutant("rms_norm", "eps hard-coded")
def rms_eps_hard_coded(x, weight, eps=1e-5):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5) * weight).to(x.dtype)


@mutant("layer_norm", "unbiased variance")
def ln_unbiased_var(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight + bias


@mutant("layer_norm", "eps added outside the sqrt")
def ln_eps_outside_sqrt(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    std = x.var(-1, keepdim=True, unbiased=False).sqrt()
    return (x - mean) / (std + eps) * weight + bias


@mutant("layer_norm", "mean not subtracted")
def ln_no_centering(x, weight, bias, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight + bias


@mutant("layer_norm", "bias forgotten")
def ln_no_bias(x, weight, bias, eps=1e-5):
    return layer_norm(x, weight, torch.zeros_like(bias), eps)


@mutant("layer_norm", "normalised over the first axis")
def ln_wrong_axis(x, weight, bias, eps=1e-5):
    mean = x.mean(0, keepdim=True)
    var = x.var(0, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


@mutant("pre_norm_residual", "norm forgotten")
def pre_no_norm(x, sublayer, norm):
    return x + sublayer(x)


@mutant("pre_norm_residual", "skip path taken from the normed input")
def pre_normed_skip(x, sublayer, norm):
    h = norm(x)
    return h + sublayer(h)


@mutant("pre_norm_residual", "Post-LN written instead")
def pre_is_post(x, sublayer, norm):
    return norm(x + sublayer(x))


@mutant("pre_norm_residual", "residual forgotten")
def pre_no_residual(x, sublayer, norm):
    return sublayer(norm(x))


@mutant("post_norm_residual", "Pre-LN written instead")
def post_is_pre(x, sublayer, norm):
    return x + sublayer(norm(x))


@mutant("post_norm_residual", "norm applied to the sublayer output only")
def post_norms_branch(x, sublayer, norm):
    return x + norm(sublayer(x))


@mutant("post_norm_residual", "residual forgotten")
def post_no_residual(x, sublayer, norm):
    return norm(sublayer(x))
