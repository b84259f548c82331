"""Attention-based filter scores of Automatic Attention Pruning (Zhao et al., AISTATS 2023, §3.1).

The attention of a filter is F(A) over its post-activation map A (one value per image, averaged
over one batch): ``mean`` = mean over HxW of |a|^p (the paper's choice, p = 1), ``max`` = max of
|a|^p, ``sum`` = sum of |a|^p. For a fully connected layer a neuron is the filter and its map a
single value. Channels coupled across layers (residual stages, depthwise convs) get the mean over
their activation maps; see ``prunebench.score.activations`` for where the maps are read.

``source: random`` computes attention from standard-normal inputs instead of training images
(Section 4.4, Figure 3). The adaptive threshold policies of AAP are policies, not part of the
scores: by default ``aap`` runs AAP-P (``aap_acc_params``); with ``policy: iterative`` it is the
paper's IAP ablation (fixed rate per round).
"""

from dataclasses import dataclass

import torch

from prunebench.plugin import Method, ScoringContext, group_statistics

_REDUCE = {"mean": torch.mean, "max": torch.amax, "sum": torch.sum}


class AttentionPruning(Method):
    name = "aap"
    summary = "AAP activation-attention scores F(|a|^p) with mean|max|sum (Zhao et al. 2023)"
    default_policy = "aap_acc_params"

    @dataclass
    class Options:
        function: str = "mean"  # mean | max | sum over the feature map
        p: float = 1.0  # exponent, p >= 1 (the paper studies 1, 2, 4)
        source: str = "train"  # train: one batch of training images; random: N(0,1) inputs

        def __post_init__(self) -> None:
            if self.function not in _REDUCE:
                raise ValueError(f"function must be one of {sorted(_REDUCE)}, got {self.function!r}")
            if not self.p >= 1:
                raise ValueError(f"p must be >= 1, got {self.p}")
            if self.source not in ("train", "random"):
                raise ValueError(f"source must be 'train' or 'random', got {self.source!r}")

    def score(self, ctx: ScoringContext):
        x = ctx.batch
        if self.options.source == "random":
            x = torch.randn(x.shape, generator=ctx.generator).to(x.device)
        reduce_map = _REDUCE[self.options.function]
        p = self.options.p

        def attention(a: torch.Tensor) -> torch.Tensor:
            maps = a.abs().pow(p).reshape(a.shape[0], a.shape[1], -1)
            return reduce_map(maps, dim=2).mean(0).double()

        return group_statistics(ctx.model, ctx.attention_points(), x, attention)
