"""Lesson 12 (DPO): the exercises and their known wrong versions."""
import torch
import torch.nn.functional as F

from minimind.course.mistakes import mistake

REFERENCE = "minimind.dpo"
EXERCISES = ("sequence_logprob", "dpo_loss")


def _reduce(token, m, average):
    total = (token * m).sum(-1)
    return total / m.sum(-1).clamp(min=1) if average else total


@mistake("sequence_logprob", "log-probs read at unshifted positions (off by one)",
         hint="the logits at position t predict token t + 1: pair each token with the logits "
              "one position before it")
def logprob_unshifted(logits, ids, mask, average=False):
    logp = torch.log_softmax(logits.float(), -1)
    token = logp.gather(-1, ids[..., None]).squeeze(-1)
    return _reduce(token, mask.float(), average)


@mistake("sequence_logprob", "mask ignored: the prompt's tokens are scored too",
         hint="only the answer's tokens count: multiply by the mask before summing")
def logprob_no_mask(logits, ids, mask, average=False):
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    token = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return _reduce(token, torch.ones_like(token), average)


@mistake("sequence_logprob", "mask not shifted with the tokens (off by one)",
         hint="the mask marks tokens: shift it the same way as the tokens it marks")
def logprob_mask_unshifted(logits, ids, mask, average=False):
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    token = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return _reduce(token, mask[:, :-1].float(), average)


@mistake("sequence_logprob", "raw logits summed instead of log-probabilities",
         hint="turn the logits into log-probabilities over the vocabulary first (log-softmax)")
def logprob_raw_logits(logits, ids, mask, average=False):
    token = logits[:, :-1].float().gather(-1, ids[:, 1:, None]).squeeze(-1)
    return _reduce(token, mask[:, 1:].float(), average)


@mistake("sequence_logprob", "always averaged over the answer's tokens",
         hint="average only when average=True; the default is the sum")
def logprob_always_average(logits, ids, mask, average=False):
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    token = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return _reduce(token, mask[:, 1:].float(), True)


@mistake("sequence_logprob", "average divides by the row length, not the scored tokens",
         hint="the average is over the masked tokens only: divide by how many there are")
def logprob_average_over_length(logits, ids, mask, average=False):
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    token = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    total = (token * mask[:, 1:].float()).sum(-1)
    return total / token.shape[-1] if average else total


def _margin(pc, pr, rc, rr):
    return (pc - pr) - (rc - rr)


@mistake("dpo_loss", "sign flipped: the rejected answer is preferred",
         hint="the loss must fall as the policy prefers the chosen answer more than the "
              "reference does")
def dpo_sign_flipped(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    return -F.logsigmoid(-beta * _margin(policy_chosen, policy_rejected, ref_chosen,
                                         ref_rejected))


@mistake("dpo_loss", "beta applied outside the log-sigmoid",
         hint="beta scales the margin inside the sigmoid; it is not a weight on the loss")
def dpo_beta_outside(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    return -beta * F.logsigmoid(_margin(policy_chosen, policy_rejected, ref_chosen,
                                        ref_rejected))


@mistake("dpo_loss", "reference terms omitted",
         hint="the margin is the policy's preference minus the reference's preference")
def dpo_no_reference(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    return -F.logsigmoid(beta * (policy_chosen - policy_rejected))


@mistake("dpo_loss", "reference preference added instead of subtracted",
         hint="the reference's preference is subtracted from the policy's: where they agree "
              "the margin is 0")
def dpo_reference_added(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    return -F.logsigmoid(beta * ((policy_chosen - policy_rejected)
                                 + (ref_chosen - ref_rejected)))


@mistake("dpo_loss", "minus sign dropped: returns log sigmoid (a negative loss)",
         hint="the loss is the negative log-likelihood of the preference: it is >= 0")
def dpo_no_minus(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    return F.logsigmoid(beta * _margin(policy_chosen, policy_rejected, ref_chosen,
                                       ref_rejected))


@mistake("dpo_loss", "averaged over the batch instead of one loss per pair",
         hint="return a (B,) tensor with one loss per pair; the training loop averages")
def dpo_batch_mean(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    return -F.logsigmoid(beta * _margin(policy_chosen, policy_rejected, ref_chosen,
                                        ref_rejected)).mean()


@mistake("dpo_loss", "log(sigmoid(x)) written out: infinite for a large negative margin",
         hint="log of a sigmoid that underflowed to 0 is -inf; use torch's log-sigmoid")
def dpo_unstable(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    return -torch.log(torch.sigmoid(beta * _margin(policy_chosen, policy_rejected, ref_chosen,
                                                   ref_rejected)))
