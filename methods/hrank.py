"""HRank: filters whose feature maps have a low rank carry less information (Lin, Ji, Wang, Zhang,
Zhang, Tian, Shao, CVPR 2020).

A channel's score is the rank of its feature map (a H x W matrix per image), averaged over the
scoring images; the lowest-ranked channels of each layer are pruned (``scope = "layerwise"``, as
the paper's per-layer compression rates). Maps are read where AAP reads attention, after the
activation that follows the channel's conv (the authors hook the ReLU after each BN, too); a
group of coupled channels gets the mean over its maps, as for every method here.

Deviations from the paper: the rank is averaged over the round's scoring images
(``prune.score_batch_size``, default one training batch) instead of 500 images (the paper reports
ranks stable over batches); the per-layer rates hand-set in the paper are replaced by the policy's
rate or target, identical for every layer-wise method; pruned networks are retrained under the
engine's schedule instead of the paper's fine-tuning. Fully connected layers' "maps" are single
values, whose rank is 1 when non-zero and 0 otherwise: on MLPs HRank ranks neurons by how often
they are active (ties, frequent there, go to the lower channel index).
"""

import torch

from prunebench.plugin import Method, ScoringContext, group_statistics


def average_rank(maps: torch.Tensor) -> torch.Tensor:
    """Per channel of ``maps`` ([B, C, H, W], or [B, C] for a linear layer), the mean rank of its maps."""
    if maps.dim() == 2:
        return (maps != 0).double().mean(0)
    return torch.linalg.matrix_rank(maps.double()).double().mean(0)


class FeatureMapRank(Method):
    name = "hrank"
    summary = "HRank: average rank of each channel's feature maps (Lin et al. 2020)"
    default_policy = "iterative"
    scope = "layerwise"

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        return group_statistics(ctx.model, ctx.attention_points(), ctx.batch, average_rank)
