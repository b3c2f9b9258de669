"""Lesson 08 (training dynamics): the exercises and their known wrong versions."""
import math

import torch

from minimind.course.mistakes import mistake

REFERENCE = "minimind.optim"
EXERCISES = ("lr_at", "clip_by_global_norm", "adamw_step", "masked_cross_entropy")


def _cosine(peak_lr, min_ratio, progress):
    return peak_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# --- lr_at ---------------------------------------------------------------------------------

@mistake("lr_at", "warmup starts from 0: step 0 has learning rate 0 and does nothing",
         hint="the first warmup step must already move the weights; count warmup steps from 1")
def lr_warmup_from_zero(step, total_steps, peak_lr, warmup=0, min_ratio=0.1):
    if step < warmup:
        return peak_lr * step / warmup
    progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
    return _cosine(peak_lr, min_ratio, progress)


@mistake("lr_at", "cosine reaches the floor one step late (at total_steps + 1)",
         hint="the decay spans the steps from the end of warmup to total_steps exactly; check "
              "the denominator of the progress fraction")
def lr_floor_one_step_late(step, total_steps, peak_lr, warmup=0, min_ratio=0.1):
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    progress = min((step - warmup) / max(total_steps - warmup + 1, 1), 1.0)
    return _cosine(peak_lr, min_ratio, progress)


@mistake("lr_at", "cosine reaches the floor one step early (at total_steps - 1)",
         hint="the decay spans the steps from the end of warmup to total_steps exactly; check "
              "the denominator of the progress fraction")
def lr_floor_one_step_early(step, total_steps, peak_lr, warmup=0, min_ratio=0.1):
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    progress = min((step - warmup) / max(total_steps - warmup - 1, 1), 1.0)
    return _cosine(peak_lr, min_ratio, progress)


@mistake("lr_at", "cosine decays to 0 instead of the floor min_ratio * peak_lr",
         hint="the cosine runs between the peak and the floor, not between the peak and 0")
def lr_decay_to_zero(step, total_steps, peak_lr, warmup=0, min_ratio=0.1):
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
    return _cosine(peak_lr, 0.0, progress)


@mistake("lr_at", "cosine counted from step 0, not from the end of warmup",
         hint="the decay starts at the peak when warmup ends; measure progress from there")
def lr_cosine_from_step_zero(step, total_steps, peak_lr, warmup=0, min_ratio=0.1):
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    return _cosine(peak_lr, min_ratio, min(step / max(total_steps, 1), 1.0))


@mistake("lr_at", "past total_steps the cosine comes back up",
         hint="after total_steps the rate stays at the floor: cap the progress at 1")
def lr_no_cap(step, total_steps, peak_lr, warmup=0, min_ratio=0.1):
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    return _cosine(peak_lr, min_ratio, (step - warmup) / max(total_steps - warmup, 1))


# --- clip_by_global_norm -------------------------------------------------------------------

def _norm(grads):
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _check(max_norm):
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")


@mistake("clip_by_global_norm", "each tensor clipped to max_norm on its own",
         hint="one factor for all tensors, from the norm of all of them together: clipping "
              "tensors separately changes the update's direction")
def clip_per_tensor(grads, max_norm):
    _check(max_norm)
    return tuple(g * torch.clamp(max_norm / (g.norm() + 1e-6), max=1.0) for g in grads)


@mistake("clip_by_global_norm", "gradients always rescaled to max_norm, even small ones",
         hint="clipping only ever shrinks: a gradient already inside the ball is left as it is")
def clip_always_rescale(grads, max_norm):
    _check(max_norm)
    return tuple(g * (max_norm / (_norm(grads) + 1e-6)) for g in grads)


@mistake("clip_by_global_norm", "global norm taken as the sum of the tensors' norms",
         hint="the global norm is the L2 norm of all entries as one vector: square, sum over "
              "every tensor, then take one root")
def clip_sum_of_norms(grads, max_norm):
    _check(max_norm)
    total = sum(g.norm() for g in grads)
    return tuple(g * torch.clamp(max_norm / (total + 1e-6), max=1.0) for g in grads)


@mistake("clip_by_global_norm", "clipped by value: every entry clamped to [-max_norm, max_norm]",
         hint="clip the norm of the whole gradient, by scaling, not each entry")
def clip_by_value(grads, max_norm):
    _check(max_norm)
    return tuple(g.clamp(-max_norm, max_norm) for g in grads)


@mistake("clip_by_global_norm", "no check on max_norm",
         hint="raise ValueError naming max_norm when it is not positive")
def clip_no_check(grads, max_norm):
    return tuple(g * torch.clamp(max_norm / (_norm(grads) + 1e-6), max=1.0) for g in grads)


# --- adamw_step ----------------------------------------------------------------------------

def _moments(grad, exp_avg, exp_avg_sq, step, betas):
    if step < 1:
        raise ValueError(f"step counts updates from 1, got {step}")
    beta1, beta2 = betas
    return beta1 * exp_avg + (1 - beta1) * grad, beta2 * exp_avg_sq + (1 - beta2) * grad * grad


@mistake("adamw_step", "weight decay added to the gradient (L2, Adam), not decoupled",
         hint="AdamW shrinks the weights directly, outside the adaptive step; a decay term in "
              "the gradient gets divided by sqrt(v) like everything else there")
def adam_l2(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8,
            weight_decay=1e-2):
    m, v = _moments(grad + weight_decay * param, exp_avg, exp_avg_sq, step, betas)
    m_hat, v_hat = m / (1 - betas[0] ** step), v / (1 - betas[1] ** step)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


@mistake("adamw_step", "no bias correction of the moments",
         hint="both averages start at 0, so early on they are too small: divide each by one "
              "minus its beta to the power of the step count")
def adam_no_bias_correction(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999),
                            eps=1e-8, weight_decay=1e-2):
    m, v = _moments(grad, exp_avg, exp_avg_sq, step, betas)
    return param * (1 - lr * weight_decay) - lr * m / (v.sqrt() + eps), m, v


@mistake("adamw_step", "bias correction uses step + 1 (counts from 0)",
         hint="`step` already counts this update (the first one is step 1): use it as it is")
def adam_bias_off_by_one(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999),
                         eps=1e-8, weight_decay=1e-2):
    m, v = _moments(grad, exp_avg, exp_avg_sq, step, betas)
    m_hat, v_hat = m / (1 - betas[0] ** (step + 1)), v / (1 - betas[1] ** (step + 1))
    return param * (1 - lr * weight_decay) - lr * m_hat / (v_hat.sqrt() + eps), m, v


@mistake("adamw_step", "eps inside the square root",
         hint="eps is added after taking the root of the second moment")
def adam_eps_inside_sqrt(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999),
                         eps=1e-8, weight_decay=1e-2):
    m, v = _moments(grad, exp_avg, exp_avg_sq, step, betas)
    m_hat, v_hat = m / (1 - betas[0] ** step), v / (1 - betas[1] ** step)
    return param * (1 - lr * weight_decay) - lr * m_hat / (v_hat + eps).sqrt(), m, v


@mistake("adamw_step", "weight decay not scaled by the learning rate",
         hint="the decoupled decay shrinks the weights by lr * weight_decay per step, so that "
              "the schedule scales it too")
def adam_decay_without_lr(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999),
                          eps=1e-8, weight_decay=1e-2):
    m, v = _moments(grad, exp_avg, exp_avg_sq, step, betas)
    m_hat, v_hat = m / (1 - betas[0] ** step), v / (1 - betas[1] ** step)
    return param * (1 - weight_decay) - lr * m_hat / (v_hat.sqrt() + eps), m, v


@mistake("adamw_step", "second moment averages |grad| instead of grad squared",
         hint="the second moment is a running mean of the squared gradient; the root comes "
              "later, in the denominator")
def adam_abs_second_moment(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999),
                           eps=1e-8, weight_decay=1e-2):
    if step < 1:
        raise ValueError(f"step counts updates from 1, got {step}")
    beta1, beta2 = betas
    m = beta1 * exp_avg + (1 - beta1) * grad
    v = beta2 * exp_avg_sq + (1 - beta2) * grad.abs()
    m_hat, v_hat = m / (1 - beta1 ** step), v / (1 - beta2 ** step)
    return param * (1 - lr * weight_decay) - lr * m_hat / (v_hat.sqrt() + eps), m, v


# --- masked_cross_entropy ------------------------------------------------------------------

def _log_probs(logits, targets):
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} need targets of shape "
                         f"{tuple(logits.shape[:-1])}, got {tuple(targets.shape)}")
    return torch.log_softmax(logits.reshape(-1, logits.shape[-1]).float(), -1), targets.reshape(-1)


@mistake("masked_cross_entropy", "ignored positions counted in the mean's denominator",
         hint="average over the positions that have a real target, not over all positions")
def ce_mean_over_all_positions(logits, targets, ignore_index=-100):
    log_probs, targets = _log_probs(logits, targets)
    keep = targets != ignore_index
    picked = log_probs.gather(-1, torch.where(keep, targets, 0)[:, None])[:, 0]
    return -(picked * keep).sum() / keep.numel()


# Before "scored as class 0": with ignore_index=0 the two give the same output, and the
# test of the argument should name this one.
@mistake("masked_cross_entropy", "ignore_index argument ignored: -100 always",
         hint="mask the positions equal to the ignore_index you were given")
def ce_fixed_ignore_index(logits, targets, ignore_index=-100):
    log_probs, targets = _log_probs(logits, targets)
    keep = targets != -100
    picked = log_probs.gather(-1, torch.where(keep, targets, 0)[:, None])[:, 0]
    return -(picked * keep).sum() / keep.sum()


@mistake("masked_cross_entropy", "ignored positions scored as class 0",
         hint="a position with target ignore_index is not a prediction of any class: drop it")
def ce_ignored_as_class_zero(logits, targets, ignore_index=-100):
    log_probs, targets = _log_probs(logits, targets)
    safe = torch.where(targets != ignore_index, targets, 0)
    return -log_probs.gather(-1, safe[:, None]).mean()


@mistake("masked_cross_entropy", "log of softmax computed without subtracting the maximum",
         hint="exp of a large logit overflows to inf; shift each row by its maximum first "
              "(the result does not change)")
def ce_unstable(logits, targets, ignore_index=-100):
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"targets of shape {tuple(targets.shape)} do not fit logits")
    flat, targets = logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1)
    log_probs = flat - flat.exp().sum(-1, keepdim=True).log()
    keep = targets != ignore_index
    picked = log_probs.gather(-1, torch.where(keep, targets, 0)[:, None])[:, 0]
    return -(picked * keep).sum() / keep.sum()


@mistake("masked_cross_entropy", "summed over positions instead of averaged",
         hint="the loss is a mean over the supervised positions, so it does not grow with the "
              "batch")
def ce_sum(logits, targets, ignore_index=-100):
    log_probs, targets = _log_probs(logits, targets)
    keep = targets != ignore_index
    picked = log_probs.gather(-1, torch.where(keep, targets, 0)[:, None])[:, 0]
    return -(picked * keep).sum()
