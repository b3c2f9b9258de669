"""Plausible wrong answers to lesson 05; tests/test_mutants.py proves each one is caught."""
import math

from minimind.course import mutant


def _check(i, out, x):
    if out.shape != x.shape:
        raise ValueError(f"layer {i} returned shape {tuple(out.shape)}, stream {tuple(x.shape)}")


@mutant("residual_stack", "skip connection taken once from the stack's input")
def stack_single_skip(x, layers, residual=True):
    h = x
    for i, layer in enumerate(layers):
        out = layer(h)
        _check(i, out, h)
        h = out
    return x + h if residual else h


@mutant("residual_stack", "every layer reads the original input (parallel branches)")
def stack_parallel_branches(x, layers, residual=True):
    if not residual:
        for layer in layers:
            x = layer(x)
        return x
    out = x
    for i, layer in enumerate(layers):
        update = layer(x)
        _check(i, update, x)
        out = out + update
    return out


@mutant("residual_stack", "residual flag ignored: always adds the skip")
def stack_always_residual(x, layers, residual=True):
    for i, layer in enumerate(layers):
        out = layer(x)
        _check(i, out, x)
        x = x + out
    return x


@mutant("residual_stack", "skip connection never added")
def stack_never_residual(x, layers, residual=True):
    for layer in layers:
        x = layer(x)
    return x


@mutant("residual_stack", "layers applied in reverse order")
def stack_reversed(x, layers, residual=True):
    for i, layer in enumerate(reversed(list(layers))):
        out = layer(x)
        _check(i, out, x)
        x = x + out if residual else out
    return x


@mutant("residual_stack", "default is residual=False")
def stack_default_plain(x, layers, residual=False):
    for i, layer in enumerate(layers):
        out = layer(x)
        _check(i, out, x)
        x = x + out if residual else out
    return x


@mutant("residual_stack", "skip path detached: no gradient flows along it")
def stack_detached_skip(x, layers, residual=True):
    for i, layer in enumerate(layers):
        out = layer(x)
        _check(i, out, x)
        x = x.detach() + out if residual else out
    return x


@mutant("residual_stack", "no shape check: broadcasting hides a wrong-shaped layer")
def stack_no_shape_check(x, layers, residual=True):
    for layer in layers:
        x = x + layer(x) if residual else layer(x)
    return x


@mutant("scaled_init_std", "one branch per layer: base / sqrt(L)")
def std_one_branch(base_std, n_layers):
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return base_std / math.sqrt(n_layers)


@mutant("scaled_init_std", "divides std by the variance factor 2L")
def std_variance_factor(base_std, n_layers):
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return base_std / (2 * n_layers)


@mutant("scaled_init_std", "multiplies instead of dividing")
def std_multiplied(base_std, n_layers):
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return base_std * math.sqrt(2 * n_layers)


@mutant("scaled_init_std", "no check on n_layers (divides by zero)")
def std_no_check(base_std, n_layers):
    return base_std / math.sqrt(2 * n_layers)


@mutant("scaled_init_std", "checks n_layers < 0 only, so 0 layers gives inf")
def std_off_by_one_check(base_std, n_layers):
    if n_layers < 0:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return base_std / math.sqrt(2 * n_layers) if n_layers else math.inf
