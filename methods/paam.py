"""PAAM, pruning by active attention manipulation (Babaiee, Liebenwein, Hasani, Rus, Grosu,
arXiv 2210.11114, 2022): a RECONSTRUCTION from the paper's abstract (../shared/seeds/paam-abstract.txt);
no code of the authors is public, and every choice the abstract leaves open is ours, listed here.

What the abstract fixes, and how it is realised:
- "learns analog filter scores from the filter weights ... through a particular attention
  mechanism": an attention module (``AttentionGates``) reads every prunable filter's weights and
  gives each a score in (0, 1) (a sigmoid).
- "by training the pruning scores of all layers simultaneously, PAAM can account for layer
  inter-dependencies": one self-attention over the filters of ALL layers at once (every filter
  attends to every other filter of the network), trained jointly with the network.
- "optimizing a cost function regularized by an additive term in the scores": the task loss plus
  ``penalty`` x the sum of all filters' scores (``dense_loss``).
- "during-training ... one-stage training process without requiring a pre-trained network": the
  attention trains with the network from scratch in the method's own dense stage
  (``Method.dense_gates``; the engine multiplies the gates into the feature maps and folds them
  into the weights of every saved model).
- "does not need layer-specific hyperparameters and pre-defined layer budgets": one global rule,
  policy ``score_threshold`` (the default): every filter scoring <= 0.5 goes, in every layer;
  the number kept per layer, and so the cut, follows from the learned scores. No size target.

Choices the abstract leaves open:
- Filter embedding: each output layer has its own linear map from its flattened filter (input
  channels x kernel) to a ``dim``-wide token (filters differ in size between layers, so one map
  cannot serve all; these are learned parameters, not hyperparameters), applied to the filters
  divided by their layer's root mean square (unit scale in every layer, magnitudes relative to
  the layer kept), plus a learned embedding of the group (so that the attention knows which
  layer a filter belongs to). A group of coupled channels (a residual stage) averages the tokens
  of its layers, the rule of every method here. The weights enter detached: the penalty lowers
  scores through the attention module, never by distorting filters.
- Attention: one pre-norm transformer block (``heads`` heads, a 2 x ``dim`` MLP, no dropout),
  then a linear head to one logit per filter, scaled by 1/sqrt(dim) so that the engine's SGD
  (the same optimiser and schedule as the network's) moves a logit no faster than a bias; the
  bias starts at 3 (every score about 0.95), so the network starts training ungated.
- What multiplies the feature maps (``gate``): ``hard`` (default) multiplies the score rounded at
  the rule's threshold 0.5 (1 above, 0 at or below) and passes the analog score's gradient
  (straight-through estimator, Bengio et al. 2013), and keeps each group's best filter on (as
  pruning keeps one channel per group: a group switched off entirely passes no signal and no
  gradient that could switch it back on). Reason: with ``soft`` (the analog score itself), a
  layer followed by a batch norm computes the same function whatever the common scale of its
  scores, so the additive penalty shrinks a layer's scores together at no cost and the absolute
  threshold removes whole layers; with the rounded gate, the trained network already runs
  without the channels the rule removes, so pruning after training changes nothing until the
  retraining (the abstract's "generate a pruned network" in one stage).
- ``penalty`` 1e-4 per filter (a filter is worth keeping when switching it off costs more than
  1e-4 nats of cross-entropy), the same for every model, set before any results run. A penalty
  on the mean score (1.0 x mean) switched nearly all of LeNet-5's filters off within 30 steps,
  while the filters were still random: a price per filter leaves the choice to trained filters.
- After the cut, the pruned network is retrained under the experiment's schedule like every
  method's round (the abstract does not say whether PAAM fine-tunes; a study fine-tunes
  one-shot methods as many epochs as a round).
- Scores: ``score()`` returns the learned scores (``ScoringContext.gates``); under a rate or
  target policy (``one_shot``) they rank the filters globally (``scope = "global"``).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.plugin import ChannelGroup, Gates, Method, ScoringContext

THRESHOLD = 0.5  # where the hard gate switches a filter off: policy score_threshold's default
INITIAL_LOGIT = 3.0  # every score starts at sigmoid(3) = 0.95


def _standardised(weight: torch.Tensor) -> torch.Tensor:
    """A layer's filters flattened, divided by their root mean square over the whole layer: the
    tokens are of unit scale in every layer, and filters keep their magnitudes relative to their
    layer's (which a norm per filter would erase)."""
    flat = weight.reshape(len(weight), -1)
    return flat / flat.pow(2).mean().sqrt().clamp_min(1e-12)


class _Block(nn.Module):
    """A pre-norm transformer block; hand-written so that training and evaluation compute alike."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (tokens, dim)
        n, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, 3, self.heads, dim // self.heads).permute(1, 2, 0, 3)
        attended = F.scaled_dot_product_attention(q, k, v)  # (heads, tokens, dim / heads)
        x = x + self.out(attended.transpose(0, 1).reshape(n, dim))
        return x + self.mlp(self.norm2(x))


class AttentionGates(Gates):
    """Scores of every prunable filter from the filter weights of all layers, jointly."""

    def __init__(self, model: nn.Module, groups: list[ChannelGroup], dim: int, heads: int, gate: str) -> None:
        super().__init__()
        self.gate = gate
        self.groups = [(g.name, g.out_layers) for g in groups]
        self.project = nn.ModuleList(
            nn.Linear(model.get_submodule(layer).weight[0].numel(), dim) for g in groups for layer in g.out_layers
        )
        self.group_embedding = nn.Parameter(0.02 * torch.randn(len(groups), dim))
        self.block = _Block(dim, heads)
        # The head reads unit-variance tokens; scaled by 1/sqrt(dim), a step of the engine's SGD
        # moves a logit as much as a step on the bias would (no width-fold gain).
        self.head = nn.Parameter(torch.randn(dim))
        self.bias = nn.Parameter(torch.tensor(INITIAL_LOGIT))

    def scores(self, model: nn.Module) -> dict[str, torch.Tensor]:
        tokens, projections = [], iter(self.project)
        for i, (_, layers) in enumerate(self.groups):
            filters = [_standardised(model.get_submodule(layer).weight.detach()) for layer in layers]
            embedded = torch.stack([next(projections)(w) for w in filters]).mean(0)
            tokens.append(embedded + self.group_embedding[i])
        logits = self.block(torch.cat(tokens)) @ self.head / len(self.head) ** 0.5 + self.bias
        sizes = [len(t) for t in tokens]
        return dict(zip((name for name, _ in self.groups), torch.sigmoid(logits).split(sizes), strict=True))

    def multipliers(self, scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.gate == "soft":
            return scores
        # Straight-through: the forward pass uses the rounded gate, the backward the analog
        # score's gradient. A group's best filter stays on, as pruning keeps at least one
        # channel per group: a group switched off entirely would pass no signal and no gradient
        # that could switch it back on.
        gates = {}
        for g, s in scores.items():
            on = (s > THRESHOLD) | (torch.arange(len(s), device=s.device) == s.argmax())
            gates[g] = on.to(s.dtype) + (s - s.detach())  # exactly 0 or 1 forward
        return gates


class PAAM(Method):
    name = "paam"
    summary = (
        "PAAM (reconstruction): attention over all filters' weights learns gates from scratch (Babaiee et al. 2022)"
    )
    default_policy = "score_threshold"
    scope = "global"

    @dataclass
    class Options:
        penalty: float = 1e-4  # the price of a filter in nats: this times the sum of all scores is added to the loss
        dim: int = 32  # width of the attention's filter tokens
        heads: int = 4  # attention heads (dim must divide by it)
        gate: str = "hard"  # hard: score rounded at 0.5, straight-through gradient; soft: the analog score

        def __post_init__(self) -> None:
            if not self.penalty >= 0:
                raise ValueError(f"penalty must be >= 0, got {self.penalty}")
            if self.dim < 1 or self.heads < 1 or self.dim % self.heads:
                raise ValueError(f"dim ({self.dim}) must be a positive multiple of heads ({self.heads})")
            if self.gate not in ("hard", "soft"):
                raise ValueError(f"gate must be 'hard' or 'soft', got {self.gate!r}")

    def dense_gates(self, model: nn.Module, groups: list[ChannelGroup]) -> Gates:
        o = self.options
        return AttentionGates(model, groups, o.dim, o.heads, o.gate)

    def dense_loss(self, model: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        return self.options.penalty * torch.cat(list(model.scores.values())).sum()

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        return {g.name: ctx.gates[g.name] for g in ctx.groups}
