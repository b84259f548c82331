"""ILP-Mean (AAP paper, Section 4.4): the L1 norm of a filter divided by its size, so that
filters of layers with different fan-in compare fairly under global selection."""

from prunebench.methods import Method, ScoringContext
from prunebench.scores import filter_l1


class IterativeL1Mean(Method):
    name = "ilp_mean"
    summary = "Iterative pruning by mean absolute filter weight (L1 / filter size)"
    default_policy = "iterative"

    def score(self, ctx: ScoringContext):
        out = {}
        for g in ctx.groups:
            l1, numel = filter_l1(ctx.model, g)
            out[g.name] = l1 / numel
        return out
