"""Random pruning: a seeded random score per channel (the sanity-check baseline)."""

import torch

from prunebench.methods import Method, ScoringContext


class RandomScores(Method):
    name = "random"
    summary = "Random channel scores, seeded by (run seed, round)"
    default_policy = "iterative"

    def score(self, ctx: ScoringContext):
        return {g.name: torch.rand(g.size, generator=ctx.generator, dtype=torch.float64) for g in ctx.groups}
