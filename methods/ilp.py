"""Iterative L1-norm pruning (ILP) as Renda, Frankle and Carbin (2020) prune structurally,
following Li et al. (2017): the filters of smallest L1 norm are ranked WITHIN each layer and a
fixed fraction of every layer is removed per round, with rewinding between rounds.

A group of coupled channels (a residual stage) counts as one layer: it loses the same fraction
as any other group, and its channels' L1 norm is the mean over the group's layers. The AAP
paper's Fig. 2a ablation ranks L1 norms globally instead: that is ``ilp_global``."""

from prunebench.plugin import Method, ScoringContext, filter_l1


class IterativeL1(Method):
    name = "ilp"
    summary = "Iterative L1-norm filter pruning, layer-wise (Renda et al. 2020, Li et al. 2017)"
    default_policy = "iterative"
    scope = "layerwise"

    def score(self, ctx: ScoringContext):
        return {g.name: filter_l1(ctx.model, g) for g in ctx.groups}
