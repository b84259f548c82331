"""Filter Pruning via Geometric Median (FPGM; He, Liu, Wang, Hu, Yang, CVPR 2019).

A filter close to the geometric median of its layer's filters is the most replaceable by the
others. As in the authors' implementation, the median is not solved for: a filter's score is the
sum of its Euclidean distances to every other filter of the layer, and the filters with the
smallest sums are pruned, the same fraction of every layer (``scope = "layerwise"``; distances of
different layers are not comparable). A group of coupled channels (a residual stage) gets the mean
of its layers' sums, the rule of every method here.

Deviations from the paper: its soft pruning (filters zeroed after every training epoch, kept
trainable, removed at the end) is replaced by the engine's hard removal and schedule, identical
for every method (rewinding between rounds, or one-shot with fine-tuning); and its optional
mixing with norm-based pruning ("rate_norm") is left out, as in its main experiments (rate_norm
= 1).
"""

import torch

from prunebench.plugin import ChannelGroup, Method, ScoringContext


def distance_sums(weight: torch.Tensor) -> torch.Tensor:
    """Per filter (output row of ``weight``), the sum of its L2 distances to all the others."""
    filters = weight.detach().reshape(weight.shape[0], -1).double().cpu()
    return torch.cdist(filters, filters).sum(1)


class GeometricMedian(Method):
    name = "fpgm"
    summary = "FPGM: distance of each filter to the others of its layer (He et al. 2019)"
    default_policy = "iterative"
    scope = "layerwise"

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        def group_score(g: ChannelGroup) -> torch.Tensor:
            layers = [distance_sums(ctx.model.get_submodule(name).weight) for name in g.out_layers]
            return torch.stack(layers).mean(0)

        return {g.name: group_score(g) for g in ctx.groups}
