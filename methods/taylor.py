"""First-order Taylor importance (Molchanov, Mallya, Tyree, Frosio, Kautz, CVPR 2019).

The importance of a channel is the squared first-order Taylor estimate of the loss change when it
is removed: (sum over its parameters of gradient x weight)^2. Where the channel has batch norms,
the paper's preferred variant gates it there: (g_gamma gamma + g_beta beta)^2 ("Taylor FO on
BN"); otherwise the channel's filter weights and bias in its conv/linear layers. Importance is
computed per minibatch and averaged over minibatches, as the paper averages it over training
iterations, and channels are ranked over all layers (``scope = "global"``, the paper's choice).
A group of coupled channels gets the mean over its layers.

Deviations from the paper: importance is estimated on the round's scoring images with labels
(``prune.score_batch_size``, default one training batch, split into minibatches of
``minibatch``) in eval mode, instead of accumulated over the training iterations between the
removal of single neurons; the engine removes a fraction (or reaches a target) per round and
retrains under its schedule, identical for every method.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from prunebench.plugin import ChannelGroup, Method, ScoringContext


class FirstOrderTaylor(Method):
    name = "taylor"
    summary = "Taylor FO: (gradient x weight)^2 per channel, at batch norms where present (Molchanov et al. 2019)"
    default_policy = "iterative"
    scope = "global"

    @dataclass
    class Options:
        minibatch: int = 32  # images per importance estimate; the estimates are averaged
        gate: str = "auto"  # auto: batch norms where the group has them, else weights; weights: always weights

        def __post_init__(self) -> None:
            if self.minibatch < 1:
                raise ValueError(f"minibatch must be >= 1, got {self.minibatch}")
            if self.gate not in ("auto", "weights"):
                raise ValueError(f"gate must be 'auto' or 'weights', got {self.gate!r}")

    def _layers(self, g: ChannelGroup) -> list[str]:
        return g.norm_layers if g.norm_layers and self.options.gate == "auto" else g.out_layers

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        model = ctx.model
        total = {g.name: torch.zeros(g.size, dtype=torch.float64) for g in ctx.groups}
        chunks = list(
            zip(ctx.batch.split(self.options.minibatch), ctx.labels.split(self.options.minibatch), strict=True)
        )
        for x, y in chunks:
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():  # the engine scores under no_grad
                F.cross_entropy(model(x), y).backward()
            for g in ctx.groups:
                per_layer = []
                for name in self._layers(g):
                    layer = model.get_submodule(name)
                    contribution = torch.zeros(g.size, dtype=torch.float64, device=x.device)
                    for p in (layer.weight, layer.bias):
                        if p is not None and p.grad is not None:
                            contribution += (p.grad * p).detach().reshape(g.size, -1).sum(1).double()
                    per_layer.append(contribution.pow(2))
                total[g.name] += torch.stack(per_layer).mean(0).cpu()
        model.zero_grad(set_to_none=True)
        return {name: t / len(chunks) for name, t in total.items()}
