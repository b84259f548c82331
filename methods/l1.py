"""One-shot L1-norm filter pruning (Li et al. 2017, "Pruning Filters for Efficient ConvNets"):
prune the smallest-L1 filters of every layer once, to the target, then retrain.

Li et al. fine-tune the pruned network (a small constant learning rate); studies run it with
``train: {rewind: finetune}`` for the same number of epochs a round of the other methods gets
(``configs/default.yaml``). Difference from the paper: Li et al. choose per-layer rates from a
sensitivity analysis; here one uniform layer-wise rate is found that reaches the target, so no
hand tuning is involved."""

from prunebench.plugin import Method, ScoringContext, filter_l1


class OneShotL1(Method):
    name = "l1"
    summary = "One-shot L1-norm filter pruning (Li et al. 2017), uniform layer-wise rate"
    default_policy = "one_shot"
    scope = "layerwise"

    def score(self, ctx: ScoringContext):
        return {g.name: filter_l1(ctx.model, g) for g in ctx.groups}
