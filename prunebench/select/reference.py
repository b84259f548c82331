"""The ``matched`` policy's reference: the architecture of another run's result, checked to be a
pruned copy of this run's model on this run's dataset (Liu et al. 2019's matched controls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from prunebench import surgery
from prunebench.config.run import Config
from prunebench.data.datasets import dataset_info
from prunebench.errors import ConfigError, DamagedFileError
from prunebench.select.policies import MatchedPolicy, Policy


def reference_channels(cfg: Config, path: Path) -> dict[str, int]:
    """Channels per group (every group of the model) of the architecture in the checkpoint
    ``path``, refused unless it is a pruned copy of this run's model on this run's dataset."""
    fix = "pass the final.pt of a finished run of the same model and dataset"
    if not path.is_file():
        raise ConfigError(f"reference {path} does not exist; run the reference experiment first, then {fix}")
    try:
        ref = surgery.load_checkpoint(path)[0]
    except DamagedFileError as e:
        raise ConfigError(f"reference {e}; {fix}") from None
    info = dataset_info(cfg.data)
    dense = surgery.dense_architecture(
        cfg.model.name, info.num_classes, info.in_channels, info.image_size, cfg.model.options
    )

    def spec(a: surgery.Architecture) -> str:
        size = f"{a.in_channels}x{a.image_size}x{a.image_size}"
        return f"{a.model} (input {size}, {a.num_classes} classes, options {a.options})"

    if spec(ref) != spec(dense):
        raise ConfigError(f"reference {path} is a {spec(ref)}, this run prunes a {spec(dense)}; {fix}")
    ref_config = path.parent / "config.yaml"  # the reference's own run config, when it is there
    if ref_config.is_file():
        dataset = ((yaml.safe_load(ref_config.read_text()) or {}).get("data") or {}).get("dataset")
        if dataset not in (None, cfg.data.dataset):
            raise ConfigError(f"reference {path} comes from a run on {dataset}, this one on {cfg.data.dataset}; {fix}")
    model = surgery.instantiate(dense)
    sizes = {g.name: g.size for g in surgery.channel_groups(model, surgery.build_graph(model, dense.example_input()))}
    for name, kept in ref.kept.items():
        if name not in sizes or len(set(kept)) != len(kept) or not all(0 <= i < sizes[name] for i in kept):
            raise ConfigError(
                f"reference {path} keeps channels {kept} of group {name!r}, which do not fit {cfg.model.name}'s "
                f"groups {sizes}; {fix}"
            )
    keep = {name: len(ref.kept.get(name, range(n))) for name, n in sizes.items()}
    if (fewest := min(keep.values())) < cfg.prune.min_channels:
        raise ConfigError(
            f"reference {path} keeps {fewest} channel(s) in a group, fewer than prune.min_channels="
            f"{cfg.prune.min_channels}; set prune.min_channels to at most {fewest}"
        )
    return keep


def bind_reference(cfg: Config, policy: Policy, reference: Path | None) -> dict[str, Any] | None:
    """Give the ``matched`` policy its reference's channel counts (refusing a missing or wrong
    reference before any work); returns what run.json records of it."""
    if not isinstance(policy, MatchedPolicy):
        if reference is not None:
            raise ConfigError(
                f"--reference is only for policy 'matched' (this run's policy is {policy.name!r}); "
                "drop it or set prune.policy=matched"
            )
        return None
    if reference is None:
        raise ConfigError(
            f"policy 'matched' keeps the channels per group of the result of experiment "
            f"{policy.options.reference!r}: pass that run's final.pt with --reference RUN_DIR/final.pt"
        )
    policy.keep = reference_channels(cfg, reference)
    return {"path": str(reference), "experiment": policy.options.reference, "channels": policy.keep}
