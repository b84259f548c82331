"""Pruning policies: how much to prune in each round, and when to stop.

A policy is a pure function of the finished rounds: given the history it answers the next
``Step`` (which round's model to start from and how to select channels) or ``Stop``, and it names
the round whose model is the result. Because a step names its base round, policies that roll
back (AAP's adaptive controller, ``prunebench.select.adaptive``) fit the same engine, and a resumed run
replays the same decisions.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from prunebench.errors import ConfigError
from prunebench.score.contract import build_options, make_method, method_source

METRICS = ("params", "flops")


@dataclass
class RoundRecord:
    round: int
    base_round: int
    params_reduction: float  # percent vs dense
    flops_reduction: float
    val_drop: float  # dense val top-1 minus this round's, in points
    removed: int  # channels removed in this round

    def reduction(self, metric: str) -> float:
        return self.params_reduction if metric == "params" else self.flops_reduction


@dataclass
class RateSelection:
    """Remove ``fraction`` of the current channels (per group or pooled); with ``target``
    (metric, percent), remove only as much as reaching that reduction needs."""

    fraction: float
    scope: str
    target: tuple[str, float] | None = None


@dataclass
class ThresholdSelection:
    """Remove channels scoring <= T * w_i (AAP's layer-aware threshold); w_i is the group's
    share of the remaining params or FLOPs, or the mean of both shares. ``units``:
    ``normalized`` expresses T in units of the dense model's mean score and w_i relative to
    the mean w (the engine multiplies T by ``threshold_scale`` = mean dense score / mean w);
    ``raw`` compares T * w_i with the scores as they are (the paper's text)."""

    threshold: float
    weighting: tuple[str, ...]
    units: str = "normalized"


@dataclass
class CountSelection:
    """Keep exactly ``keep[group]`` channels of each group, the lowest-scoring others go; a group
    not named keeps all its channels (the ``matched`` policy's reference architecture)."""

    keep: dict[str, int]


@dataclass
class ScoreThreshold:
    """Remove every channel scoring <= ``threshold``, the same threshold for every group (one
    global rule: how many channels each group keeps follows from its scores)."""

    threshold: float


@dataclass
class Step:
    base_round: int
    selection: RateSelection | ThresholdSelection | CountSelection | ScoreThreshold


@dataclass
class Stop:
    reason: str


def _check_target(metric: str, target: float) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not 0 < target < 100:
        raise ValueError(f"target must be a reduction in percent, 0 < target < 100, got {target}")


def _check_scope(scope: str) -> None:
    if scope not in ("global", "layerwise"):
        raise ValueError(f"scope must be 'global' or 'layerwise', got {scope!r}")


class Policy:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    @dataclass
    class Options:
        pass

    def __init__(self, options: Policy.Options, max_rounds: int) -> None:
        self.options = options
        self.max_rounds = max_rounds

    def next_step(self, history: list[RoundRecord]) -> Step | Stop:
        """The next round's step, or why to stop. ``history[0]`` is the dense model."""
        if history[-1].round >= self.max_rounds:
            return Stop(f"round budget ({self.max_rounds}) spent")
        return self._next(history)

    def _next(self, history: list[RoundRecord]) -> Step | Stop:
        raise NotImplementedError

    def meets_target(self, record: RoundRecord) -> bool:
        raise NotImplementedError

    def final_round(self, history: list[RoundRecord]) -> int:
        """The round whose model is the run's result."""
        return history[-1].round

    def search_key(self) -> dict[str, Any] | None:
        """What decides this policy's steps as long as every round is accepted and no target is
        reached, or None if nothing is shared. Runs that differ only in their policy and share a
        search key take the same first rounds: a study runs the later one after the earlier, which
        trains those rounds once (prunebench.run.reuse)."""
        return None

    def describe(self, history: list[RoundRecord]) -> list[dict[str, Any]]:
        """Per round, the policy's own columns for rounds.csv (none by default)."""
        return [{} for _ in history]


class IterativePolicy(Policy):
    name = "iterative"
    summary = "Fixed fraction of the remaining channels per round until a params/FLOPs reduction target"

    @dataclass
    class Options:
        rate: float = 0.2  # fraction of the remaining channels removed per round
        metric: str = "params"  # params | flops
        target: float = 90.0  # reduction in percent vs the dense model
        scope: str = "global"  # global: one ranking over all groups; layerwise: rate per group

        def __post_init__(self) -> None:
            if not 0 < self.rate < 1:
                raise ValueError(f"rate must be in (0, 1), got {self.rate}")
            _check_target(self.metric, self.target)
            _check_scope(self.scope)

    def meets_target(self, record: RoundRecord) -> bool:
        return record.reduction(self.options.metric) >= self.options.target

    def search_key(self) -> dict[str, Any]:
        # The target only caps the last round's rate.
        return {"policy": "iterative", "rate": self.options.rate, "scope": self.options.scope}

    def _next(self, history: list[RoundRecord]) -> Step | Stop:
        last = history[-1]
        if self.meets_target(last):
            return Stop("target reached")
        if last.round > 0 and last.removed == 0:
            return Stop("nothing left to prune: every group is at its minimum")
        o = self.options
        return Step(last.round, RateSelection(o.rate, o.scope, (o.metric, o.target)))


class OneShotPolicy(Policy):
    name = "one_shot"
    summary = "Prune once, straight to a params/FLOPs reduction target, then retrain"

    @dataclass
    class Options:
        metric: str = "params"
        target: float = 90.0
        scope: str = "layerwise"

        def __post_init__(self) -> None:
            _check_target(self.metric, self.target)
            _check_scope(self.scope)

    def meets_target(self, record: RoundRecord) -> bool:
        return record.reduction(self.options.metric) >= self.options.target

    def _next(self, history: list[RoundRecord]) -> Step | Stop:
        if len(history) > 1:
            return Stop("one-shot round done")
        return Step(0, RateSelection(1.0, self.options.scope, (self.options.metric, self.options.target)))


class ScoreThresholdPolicy(Policy):
    """PAAM's rule (Babaiee et al. 2022): once, from the dense model, remove every channel whose
    score is at most one threshold, global and the same for every layer; the cut follows from
    the scores (for PAAM, from its gate penalty), not from a size target."""

    name = "score_threshold"
    summary = "Once, from the dense model: remove every channel scoring <= one global threshold, then retrain"

    @dataclass
    class Options:
        threshold: float = 0.5  # PAAM: the score at which its gates switch a channel off

        def __post_init__(self) -> None:
            if not math.isfinite(self.threshold):
                raise ValueError(f"threshold must be a finite number, got {self.threshold}")

    def _next(self, history: list[RoundRecord]) -> Step | Stop:
        if len(history) > 1:
            return Stop("channels below the threshold removed and retrained")
        return Step(0, ScoreThreshold(self.options.threshold))

    def meets_target(self, record: RoundRecord) -> bool:
        return record.round > 0  # no size target: the one round is the result


class MatchedPolicy(Policy):
    """The matched-architecture control (after Liu et al. 2019, "Rethinking the value of network
    pruning"): one round from the dense model to exactly the channel counts per group of a
    reference run's result, the channels chosen by this run's method (``random``: random channels),
    retrained like every round. The reference architecture is not part of the config: the engine
    reads it from the reference's ``final.pt`` (``prunebench run --reference``) into ``keep``."""

    name = "matched"
    summary = "Once, from the dense model to a reference run's channels per group (--reference), then retrain"

    @dataclass
    class Options:
        reference: str = ""  # the study experiment whose result architecture is matched (required)

        def __post_init__(self) -> None:
            if not self.reference:
                raise ValueError("reference must name the experiment whose result architecture is matched")

    def __init__(self, options: MatchedPolicy.Options, max_rounds: int) -> None:
        super().__init__(options, max_rounds)
        self.keep: dict[str, int] | None = None  # channels per group of the reference; set by the engine

    def _next(self, history: list[RoundRecord]) -> Step | Stop:
        if len(history) > 1:
            return Stop("reference architecture matched and retrained")
        if self.keep is None:
            raise ConfigError("policy 'matched' has no reference architecture: pass --reference RUN_DIR/final.pt")
        return Step(0, CountSelection(dict(self.keep)))

    def meets_target(self, record: RoundRecord) -> bool:
        # Round 1 is cut to exactly the reference's counts per group (the selection guarantees it).
        return record.round > 0


def all_policies() -> dict[str, type[Policy]]:
    from prunebench.select.adaptive import ADAPTIVE_POLICIES

    policies = (IterativePolicy, OneShotPolicy, *ADAPTIVE_POLICIES, ScoreThresholdPolicy, MatchedPolicy)
    return {p.name: p for p in policies}


def resolve_prune(prune: Any) -> tuple[Any, Policy]:
    """The method and policy of a ``PruneConfig``, which is filled in, in place, with what they
    resolved: the method's default policy, every option's value, defaults and the method's
    scope included, and the hash of the method's source file. The config, and so its hash, then
    names what runs: a default or a plugin that changes between versions changes the hash instead
    of silently resuming or reusing old rounds."""
    method = make_method(prune.method, prune.method_options, prune.methods_path)
    prune.policy = prune.policy or method.default_policy
    policy = make_policy(prune.policy, prune.policy_options, prune.max_rounds, method.scope)
    prune.method_options = dataclasses.asdict(method.options)
    prune.method_source = method_source(type(method))
    prune.policy_options = dataclasses.asdict(policy.options)
    return method, policy


def make_policy(name: str, options: dict[str, Any], max_rounds: int, method_scope: str | None = None) -> Policy:
    """The policy ``name`` with its options. ``method_scope`` is the selection scope the
    method's definition fixes (``Method.scope``): it fills a rate policy's ``scope``, and an
    explicit other ``scope`` is refused, so that a variant always runs under its own name."""
    policies = all_policies()
    if name not in policies:
        raise ConfigError(f"unknown policy {name!r}; choose one of: {', '.join(policies)}")
    cls = policies[name]
    options = dict(options)
    if method_scope is not None and "scope" in {f.name for f in dataclasses.fields(cls.Options)}:
        if options.get("scope", method_scope) != method_scope:
            raise ConfigError(
                f"policy_options.scope {options['scope']!r} contradicts the method, which ranks {method_scope}; "
                "drop the scope, or choose the method's other variant (see `prunebench methods`)"
            )
        options["scope"] = method_scope
    return cls(build_options(cls.Options, options, f"policy {name!r}"), max_rounds)
