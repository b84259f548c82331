"""ILP with one global ranking of raw filter L1 norms across layers, as in the AAP paper's
Fig. 2a ablation (IAP vs ILP vs ILP-Mean at a fixed rate). Raw norms grow with a layer's fan-in,
so a global ranking favours removing filters of layers with few inputs: ``ilp_mean`` divides by
the filter size to correct that, and ``ilp`` (layer-wise) avoids the comparison altogether."""

from prunebench.plugin import Method, ScoringContext, filter_l1


class IterativeL1Global(Method):
    name = "ilp_global"
    summary = "Iterative L1-norm filter pruning ranked globally (the AAP paper's Fig. 2a ILP)"
    default_policy = "iterative"
    scope = "global"

    def score(self, ctx: ScoringContext):
        return {g.name: filter_l1(ctx.model, g) for g in ctx.groups}
