"""Network slimming (Liu, Li, Shen, Huang, Yan, Zhang, ICCV 2017).

The dense model trains from scratch with an L1 penalty on the scale factors gamma of every batch
norm (``sparsity`` x sum |gamma| added to the loss: its pre-pruning training, so the method has
dense models of its own); channels are then ranked by |gamma| over all layers (``scope =
"global"``, the paper's global threshold) and the smallest removed; the pruned network is
fine-tuned. Needs a batch norm on every prunable channel group (refused before any training
otherwise). A group of coupled channels (a residual stage) gets the mean |gamma| of its batch
norms, the rule of every method here.

Deviations from the paper: the amount removed is the policy's params/FLOPs target (one-shot by
default, as the paper's single pass; ``iterative`` gives its multi-pass scheme without further
sparsity training) rather than a percentage of channels; the paper's channel-selection layers
for pre-activation ResNets/DenseNets are not needed, Torch-Pruning removes coupled channels
together; ``sparsity`` defaults to the paper's 1e-4 (its VGG setting; 1e-5 for ResNet and
DenseNet), the same for every model unless an experiment sets it.
"""

from dataclasses import dataclass

import torch
from torch import nn

from prunebench.plugin import Method, ScoringContext


class NetworkSlimming(Method):
    name = "slimming"
    summary = "Network slimming: |gamma| of batch norms after L1-sparsity training (Liu et al. 2017)"
    default_policy = "one_shot"
    scope = "global"
    needs = ("batch_norm",)

    @dataclass
    class Options:
        sparsity: float = 1e-4  # lambda of the L1 penalty on batch-norm scales in the dense training

        def __post_init__(self) -> None:
            if not self.sparsity >= 0:
                raise ValueError(f"sparsity must be >= 0, got {self.sparsity}")

    def dense_loss(self, model: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        norms = [m.weight for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]
        return self.options.sparsity * sum(w.abs().sum() for w in norms)

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        def gamma(name: str) -> torch.Tensor:
            return ctx.model.get_submodule(name).weight.detach().abs().double().cpu()

        return {g.name: torch.stack([gamma(n) for n in g.norm_layers]).mean(0) for g in ctx.groups}
