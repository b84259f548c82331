"""Random pruning, layer-wise: a seeded random score per channel, the same fraction of every
group per round (the sanity-check baseline; ``random_global`` ranks the random scores over all
groups at once, which prunes groups in proportion to their size)."""

from prunebench.plugin import Method, ScoringContext, random_scores


class RandomScores(Method):
    name = "random"
    summary = "Random channel scores, seeded by (run seed, round); layer-wise"
    default_policy = "iterative"
    scope = "layerwise"

    def score(self, ctx: ScoringContext):
        return random_scores(ctx.groups, ctx.generator)
