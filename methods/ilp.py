"""Iterative L1-norm pruning (ILP; Renda et al. 2020): remove the filters of smallest L1 norm,
a fixed fraction per round, with rewinding between rounds."""

from prunebench.methods import Method, ScoringContext
from prunebench.scores import filter_l1


class IterativeL1(Method):
    name = "ilp"
    summary = "Iterative L1-norm filter pruning (Renda et al. 2020); fixed rate per round"
    default_policy = "iterative"

    def score(self, ctx: ScoringContext):
        return {g.name: filter_l1(ctx.model, g)[0] for g in ctx.groups}
