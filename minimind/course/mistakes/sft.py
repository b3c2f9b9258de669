"""Lesson 10 (sft): the exercises and their known wrong versions."""
import torch

from minimind.course.mistakes import mistake

REFERENCE = "minimind.sft"
EXERCISES = ("assistant_labels", "masked_mean")
IGNORE = -100


def _find(seq, pattern, start):
    n = len(pattern)
    for i in range(start, len(seq) - n + 1):
        if seq[i:i + n] == list(pattern):
            return i
    return -1


def _spans(ids, start, end, first_shift=0, last_shift=0, only_first=False, keep_open=True):
    """The reference's spans with one thing changed: where a span begins or ends, how many."""
    if not start or not end:
        raise ValueError("the start and end markers must be non-empty")
    seq = ids.tolist()
    labels = torch.full_like(ids, IGNORE)
    i = _find(seq, start, 0)
    while i >= 0:
        first = i + len(start) + first_shift
        close = _find(seq, end, i + len(start))
        if close < 0 and not keep_open:
            break
        last = len(seq) if close < 0 else close + len(end) + last_shift
        first, last = max(first, 0), min(last, len(seq))
        labels[first:last] = ids[first:last]
        if only_first:
            break
        i = _find(seq, start, close + len(end) if close >= 0 else len(seq))
    return labels


@mistake("assistant_labels", "the closing <|im_end|>\\n is not supervised",
         hint="the span ends after the end marker, not before it: a model that never learns "
              "the closing marker never learns to stop")
def labels_without_end(ids, start, end):
    return _spans(ids, start, end, last_shift=-len(end))


@mistake("assistant_labels", "the <|im_start|>assistant\\n header is supervised too",
         hint="the span begins at the first token after the start marker; the header is "
              "part of the prompt, which the model is given, not asked to produce")
def labels_with_header(ids, start, end):
    return _spans(ids, start, end, first_shift=-len(start))


@mistake("assistant_labels", "the first token of the answer is skipped (off by one)",
         hint="the first supervised position is the token right after the start marker")
def labels_skip_first(ids, start, end):
    return _spans(ids, start, end, first_shift=1)


@mistake("assistant_labels", "only the first assistant turn is supervised",
         hint="keep searching for the start marker after each span ends: every assistant "
              "turn of a multi-turn conversation is an answer")
def labels_first_turn_only(ids, start, end):
    return _spans(ids, start, end, only_first=True)


@mistake("assistant_labels", "the <|im_end|> is supervised but not the newline after it",
         hint="the end marker is <|im_end|> followed by a newline: supervise all of its ids")
def labels_without_newline(ids, start, end):
    return _spans(ids, start, end, last_shift=-(len(end) - 1))


@mistake("assistant_labels", "an answer cut off before its <|im_end|> is not supervised",
         hint="when the end marker never comes, the span runs to the last token")
def labels_drop_open_span(ids, start, end):
    return _spans(ids, start, end, keep_open=False)


@mistake("assistant_labels", "labels already shifted by one (label[i] = ids[i + 1])",
         hint="labels are aligned with the ids (label[i] is ids[i] or -100); the shift to "
              "next-token targets happens later, when the batch is made")
def labels_pre_shifted(ids, start, end):
    labels = _spans(ids, start, end)
    return torch.cat([labels[1:], labels.new_full((1,), IGNORE)])


def _check(values, mask):
    if mask.shape != values.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the shape of values "
                         f"{tuple(values.shape)}")
    return mask.to(values.dtype)


@mistake("masked_mean", "divides by the number of all entries, masked or not",
         hint="the count in the denominator is the number of True entries")
def masked_mean_all_count(values, mask, dim=None):
    m = _check(values, mask)
    return (values * m).mean() if dim is None else (values * m).mean(dim)


@mistake("masked_mean", "the sum is not masked, only the count",
         hint="entries where the mask is False must not enter the sum either")
def masked_mean_unmasked_sum(values, mask, dim=None):
    m = _check(values, mask)
    if dim is None:
        return values.sum() / m.sum().clamp(min=1)
    return values.sum(dim) / m.sum(dim).clamp(min=1)


@mistake("masked_mean", "NaN (0 / 0) when the mask has no True entry",
         hint="a mean over nothing must be 0: keep the count from reaching zero")
def masked_mean_nan_on_empty(values, mask, dim=None):
    m = _check(values, mask)
    if dim is None:
        return (values * m).sum() / m.sum()
    return (values * m).sum(dim) / m.sum(dim)


@mistake("masked_mean", "dim ignored: always the mean over everything",
         hint="with dim given, reduce only along that dimension")
def masked_mean_ignores_dim(values, mask, dim=None):
    m = _check(values, mask)
    return (values * m).sum() / m.sum().clamp(min=1)


@mistake("masked_mean", "the mean of per-row means instead of the mean over all entries",
         hint="with dim=None every True entry weighs the same, whichever row it is in")
def masked_mean_of_row_means(values, mask, dim=None):
    m = _check(values, mask)
    if dim is not None:
        return (values * m).sum(dim) / m.sum(dim).clamp(min=1)
    if values.dim() < 2:
        return (values * m).sum() / m.sum().clamp(min=1)
    rows = (values * m).sum(-1) / m.sum(-1).clamp(min=1)
    return rows.mean()
