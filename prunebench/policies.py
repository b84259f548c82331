"""Pruning policies: how much to prune in each round, and when to stop.

A policy sees the history of finished rounds and answers with the next ``Step`` (which round's
model to start from and how to select channels) or ``Stop``. Because a step names its base
round, policies that roll back (AAP's adaptive controller) fit the same engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from prunebench.errors import ConfigError
from prunebench.methods import build_options

METRICS = ("params", "flops")


@dataclass
class RoundRecord:
    round: int
    base_round: int
    params_reduction: float  # percent vs dense
    flops_reduction: float
    val_drop: float  # dense val top-1 minus this round's, in points


@dataclass
class RateSelection:
    """Remove ``fraction`` of the current channels (per group or pooled); with ``target``
    (metric, percent), remove only as much as reaching that reduction needs."""

    fraction: float
    scope: str
    target: tuple[str, float] | None = None


@dataclass
class Step:
    base_round: int
    selection: RateSelection


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


def _reduction(record: RoundRecord, metric: str) -> float:
    return record.params_reduction if metric == "params" else record.flops_reduction


class Policy:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    @dataclass
    class Options:
        pass

    def __init__(self, options: Policy.Options) -> None:
        self.options = options

    def next_step(self, history: list[RoundRecord]) -> Step | Stop:
        raise NotImplementedError

    def final_round(self, history: list[RoundRecord]) -> int:
        """The round whose model is the run's result."""
        return history[-1].round


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

    def next_step(self, history: list[RoundRecord]) -> Step | Stop:
        last = history[-1]
        if _reduction(last, self.options.metric) >= self.options.target:
            return Stop("target reached")
        return Step(
            last.round, RateSelection(self.options.rate, self.options.scope, (self.options.metric, self.options.target))
        )


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

    def next_step(self, history: list[RoundRecord]) -> Step | Stop:
        if len(history) > 1:
            return Stop("one-shot round done")
        return Step(0, RateSelection(1.0, self.options.scope, (self.options.metric, self.options.target)))


POLICIES: dict[str, type[Policy]] = {p.name: p for p in (IterativePolicy, OneShotPolicy)}


def make_policy(name: str, options: dict) -> Policy:
    if name not in POLICIES:
        raise ConfigError(f"unknown policy {name!r}; choose one of: {', '.join(POLICIES)}")
    cls = POLICIES[name]
    return cls(build_options(cls.Options, options, f"policy {name!r}"))
