"""Random pruning with one global ranking: seeded random scores pooled over all groups, so
each group loses channels in proportion to its size (``random`` is the layer-wise variant)."""

from prunebench.plugin import Method, ScoringContext, random_scores


class RandomGlobal(Method):
    name = "random_global"
    summary = "Random channel scores, seeded by (run seed, round); ranked globally"
    default_policy = "iterative"
    scope = "global"

    def score(self, ctx: ScoringContext):
        return random_scores(ctx.groups, ctx.generator)
