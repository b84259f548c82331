"""ILP-Mean (AAP paper, Section 4.4): the L1 norm of a filter divided by its size, so that
filters of layers with different fan-in compare fairly under the global ranking it is defined
for (within one single-layer group it orders filters exactly like ``ilp``)."""

from prunebench.plugin import Method, ScoringContext, filter_l1


class IterativeL1Mean(Method):
    name = "ilp_mean"
    summary = "Iterative pruning by mean absolute filter weight (L1 / filter size), ranked globally"
    default_policy = "iterative"
    scope = "global"

    def score(self, ctx: ScoringContext):
        return {g.name: filter_l1(ctx.model, g, per_weight=True) for g in ctx.groups}
