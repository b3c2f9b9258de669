"""Lesson 05 (residual): the exercises and their known wrong versions."""
import math

from minimind.course.mistakes import mistake

REFERENCE = "minimind.model"
EXERCISES = ("residual_stack", "scaled_init_std")


def _add(i, x, out):
    """The reference's shape check, so a wrong version differs from it in one thing only."""
    if out.shape != x.shape:
        raise ValueError(f"layer {i} returned shape {tuple(out.shape)}, stream {tuple(x.shape)}")
    return x + out


def _compose(x, layers):
    for layer in layers:
        x = layer(x)
    return x


# Order matters where two wrong versions give the same output on one test's inputs: the
# diagnosis names the first that matches. `residual=False` by default comes before "skip never
# added", so the test of the default names it; the explicit residual=True test names the other.

@mistake("residual_stack", "default is residual=False",
         hint="the signature's default must make residual_stack(x, layers) the residual stack")
def stack_default_plain(x, layers, residual=False):
    for i, layer in enumerate(layers):
        x = _add(i, x, layer(x)) if residual else layer(x)
    return x


@mistake("residual_stack", "skip connection taken once from the stack's input, "
                           "x + f3(f2(f1(x)))",
         hint="every layer gets its own skip connection around it, not one connection "
              "around the whole stack")
def stack_single_skip(x, layers, residual=True):
    h = _compose(x, layers)
    return _add(len(layers) - 1, x, h) if residual and layers else h


@mistake("residual_stack", "skip added once at the end whatever the flag, x + f3(f2(f1(x)))",
         hint="with residual=False there is no skip connection at all; with residual=True "
              "each layer has its own")
def stack_single_skip_always(x, layers, residual=True):
    return x + _compose(x, layers)


@mistake("residual_stack", "every layer reads the original x, x + f1(x) + f2(x) + f3(x)",
         hint="each layer reads the running stream, which already holds the earlier layers' "
              "updates; update the variable the next layer reads")
def stack_parallel_branches(x, layers, residual=True):
    if not residual:
        return _compose(x, layers)
    out = x
    for i, layer in enumerate(layers):
        out = _add(i, out, layer(x))
    return out


@mistake("residual_stack", "residual flag ignored: the skip connection is always added",
         hint="with residual=False each layer's output replaces the stream")
def stack_always_residual(x, layers, residual=True):
    for i, layer in enumerate(layers):
        x = _add(i, x, layer(x))
    return x


@mistake("residual_stack", "skip connection never added, f3(f2(f1(x)))",
         hint="with residual=True add each layer's output to its input instead of replacing it")
def stack_never_residual(x, layers, residual=True):
    return _compose(x, layers)


@mistake("residual_stack", "layers applied in reverse order",
         hint="apply the layers in the order the sequence gives them")
def stack_reversed(x, layers, residual=True):
    for i, layer in enumerate(reversed(list(layers))):
        x = _add(i, x, layer(x)) if residual else layer(x)
    return x


@mistake("residual_stack", "stream replaced by each update, only the last skip kept",
         hint="every layer, not just the last, adds its output to the stream")
def stack_last_skip_only(x, layers, residual=True):
    if not residual or not layers:
        return _compose(x, layers)
    h = _compose(x, layers[:-1])
    return _add(len(layers) - 1, h, layers[-1](h))


@mistake("residual_stack", "skip path detached: no gradient flows along it",
         hint="do not detach the stream: the identity path must carry the gradient too")
def stack_detached_skip(x, layers, residual=True):
    for i, layer in enumerate(layers):
        x = _add(i, x.detach(), layer(x)) if residual else layer(x)
    return x


@mistake("residual_stack", "no shape check: broadcasting hides a wrong-shaped layer",
         hint="compare each layer's output shape with the stream's before adding, and raise "
              "ValueError naming both")
def stack_no_shape_check(x, layers, residual=True):
    for layer in layers:
        x = x + layer(x) if residual else layer(x)
    return x


@mistake("scaled_init_std", "one branch per layer counted: base / sqrt(L)",
         hint="each block writes into the stream twice, attention and FFN")
def std_one_branch(base_std, n_layers):
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return base_std / math.sqrt(n_layers)


@mistake("scaled_init_std", "divided by the variance factor 2L instead of its root",
         hint="variances add, standard deviations do not: the std shrinks by the root of "
              "the factor the variance grows by")
def std_variance_factor(base_std, n_layers):
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return base_std / (2 * n_layers)


@mistake("scaled_init_std", "base / sqrt(2) / L",
         hint="the variances of all the branches add up; the std shrinks by the root of "
              "that whole count, not by part of it")
def std_root_two_over_l(base_std, n_layers):
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return base_std / math.sqrt(2) / n_layers


@mistake("scaled_init_std", "multiplied instead of divided",
         hint="deeper models need a smaller std per branch, not a larger one")
def std_multiplied(base_std, n_layers):
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return base_std * math.sqrt(2 * n_layers)


@mistake("scaled_init_std", "no check on n_layers (divides by zero)",
         hint="raise ValueError naming n_layers when it is below 1")
def std_no_check(base_std, n_layers):
    return base_std / math.sqrt(2 * n_layers)


@mistake("scaled_init_std", "checks n_layers < 0 only, so 0 layers gives inf",
         hint="0 layers is not a model either: the check is n_layers < 1")
def std_off_by_one_check(base_std, n_layers):
    if n_layers < 0:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return base_std / math.sqrt(2 * n_layers) if n_layers else math.inf
