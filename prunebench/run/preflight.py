"""Preflight of a study's AAP experiments: will the adaptive search prune within its budget?

For each AAP experiment x model (first seed), the dense model is scored as round 1 of the run
would score it, and the thresholds of the first rounds (T = 0, lambda0, 2 lambda0, ...: every
round acceptable, the fastest the search can go) are applied to those scores with the
layer-aware weights. No training happens, so later rounds' re-scoring is not simulated: this
answers only whether T reaches the scores in time. The check fails when the thresholds of the
first half of the budget remove fewer than 10 % of the prunable channels beyond what round 1
(T = 0: dead channels) removes: a search that cannot do that even when every round is accepted
cannot reach the cuts of 50-90 % that studies ask for.

Dense model: the study's trained one (``<results>/dense/...``, scored on the run's own round-1
training batch, so round 1 matches the real run) when it exists, otherwise a freshly
initialised model scored on standard-normal inputs (before any training: a weaker check, and
said so in the report).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench import paths, surgery
from prunebench.config.run import Config, config_from_dict
from prunebench.config.study import experiment_models, machine_overrides, run_config
from prunebench.data.datasets import dataset_info
from prunebench.data.loaders import make_loaders
from prunebench.errors import ConfigError
from prunebench.score.contract import ScoringContext, make_method
from prunebench.select.adaptive import AdaptivePolicy
from prunebench.select.channels import (
    layer_aware_thresholds,
    select_by_threshold,
    threshold_scale,
    threshold_weights,
)
from prunebench.select.policies import all_policies, make_policy
from prunebench.train.loop import seeded_generator

MIN_PROGRESS = 0.10


@dataclass
class Preview:
    model: str
    experiment: str
    dense: str  # "trained" or "initialised"
    budget: int
    removed: list[int]  # channels removed by the threshold of rounds 1, 2, ... (cumulative)
    channels: int

    @property
    def half(self) -> int:
        return min(self.budget, max(2, self.budget // 2))

    @property
    def progress(self) -> float:
        """Fraction of the channels removed beyond round 1's by the end of the first half."""
        return (self.removed[self.half - 1] - self.removed[0]) / self.channels

    @property
    def ok(self) -> bool:
        return self.progress >= MIN_PROGRESS


def _dense(
    cfg: Config, dense_path: Path | None, batch_size: int
) -> tuple[Any, nn.Module, list, tuple[torch.Tensor, torch.Tensor], str]:
    gen = seeded_generator(cfg.seed, "score", 1)
    if dense_path is not None and dense_path.exists():
        arch, model, _ = surgery.load_checkpoint(str(dense_path))
        loaders = make_loaders(cfg.data, cfg.train, torch.device("cpu"))
        batch, labels = loaders.train.sample(cfg.prune.score_batch_size or cfg.train.batch_size, gen)
        which = "trained"
    else:
        info = dataset_info(cfg.data)
        arch = surgery.dense_architecture(
            cfg.model.name, info.num_classes, info.in_channels, info.image_size, cfg.model.options
        )
        torch.manual_seed(cfg.seed)
        model = surgery.instantiate(arch)
        batch = torch.randn(batch_size, info.in_channels, info.image_size, info.image_size, generator=gen)
        labels = torch.randint(0, info.num_classes, (batch_size,), generator=gen)
        which = "initialised"
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    return arch, model.eval(), groups, (batch, labels), which


def preview(cfg: Config, dense_path: Path | None, batch_size: int = 8, cache: dict | None = None) -> Preview:
    """The channels removed (cumulative) by the thresholds of the first ``max_rounds`` rounds of
    the AAP run ``cfg`` if every round were acceptable, scoring the dense model at
    ``dense_path`` (else an initialised one on ``batch_size`` normal inputs). ``cache`` keeps
    dense models and scores between calls."""
    cache = {} if cache is None else cache
    method = make_method(cfg.prune.method, cfg.prune.method_options, cfg.prune.methods_path)
    policy = make_policy(cfg.prune.policy or method.default_policy, cfg.prune.policy_options, cfg.prune.max_rounds)
    if not isinstance(policy, AdaptivePolicy):
        raise ConfigError(f"{cfg.name}: policy {policy.name!r} has no thresholds to preview (AAP policies only)")
    key = (cfg.model.name, str(dense_path))
    if key not in cache:
        cache[key] = _dense(cfg, dense_path, batch_size)
    arch, model, groups, (batch, labels), which = cache[key]
    score_key = (*key, method.name, repr(method.options))
    if score_key not in cache:
        gen = seeded_generator(cfg.seed, "score", 1)
        with torch.no_grad():
            scores = method.score(ScoringContext(model, groups, batch, gen, 1, labels))
        cache[score_key] = {g.name: scores[g.name].double().cpu() for g in groups}
    scores = cache[score_key]
    o = policy.options
    weighting = policy.objective().weighting
    if (*key, weighting) not in cache:
        cache[(*key, weighting)] = threshold_weights(weighting, model, groups, arch.example_input())
    weights = cache[(*key, weighting)]
    scale = threshold_scale(scores, weights, o.units)
    removed = []
    for r in range(1, cfg.prune.max_rounds + 1):
        thresholds = layer_aware_thresholds((r - 1) * o.lambda0 * scale, weights)
        chosen = select_by_threshold(scores, thresholds, cfg.prune.min_channels)
        removed.append(sum(len(v) for v in chosen.values()))
    return Preview(cfg.model.name, cfg.name, which, len(removed), removed, sum(g.size for g in groups))


def report(previews: list[Preview], show: int = 8) -> str:
    """One line per preview and, when some fail, what to do."""
    lines = []
    for p in previews:
        shown = " ".join(str(n) for n in p.removed[:show])
        verdict = "ok" if p.ok else f"FAIL: < {MIN_PROGRESS:.0%} beyond round 1 by round {p.half}"
        lines.append(
            f"{p.model:<14} {p.experiment:<26} dense {p.dense:<11} removed by rounds 1..{min(show, p.budget)} "
            f"of {p.budget}: {shown} (of {p.channels}); by round {p.half}: +{p.progress:.0%}  {verdict}"
        )
    failed = sum(not p.ok for p in previews)
    if failed:
        lines.append(
            f"{failed} AAP experiment(s) would not prune within their round budget: raise lambda0 or max_rounds"
        )
    return "\n".join(lines) + "\n"


def preflight(study: dict[str, Any]) -> list[Preview]:
    """A ``Preview`` of every AAP experiment x model of ``study`` (first seed)."""
    seed = study["seeds"][0]
    out, cache = [], {}
    for experiment in study["experiments"]:
        for model in experiment_models(study, experiment):
            cfg = run_config(study, model, experiment, seed)
            # run_config names the policy (the resolved prune section)
            parsed = config_from_dict(cfg, machine_overrides(study))
            if not issubclass(all_policies()[parsed.prune.policy], AdaptivePolicy):
                continue
            path = Path(paths.dense_dir(study["results"], model, seed)) / paths.DENSE_MODEL
            out.append(preview(parsed, path, cache=cache))
    return out
