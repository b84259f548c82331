"""Physical channel pruning through Torch-Pruning's dependency graph.

A pruned model is a function of its ``Architecture``: the model spec plus, for every prunable
channel group, the ORIGINAL ids of the channels it keeps. Groups are named by their root layer
(the first conv/linear of the group in module order), which is the same in every pruned copy of
a model. Removing channels from distinct groups commutes, so pruning a fresh model once per group
with the removed original ids rebuilds any pruned model exactly; no pruning history is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from prunebench.errors import DamagedFileError
from prunebench.io import atomic_torch_save, load_torch
from prunebench.models import CUSTOMIZED_PRUNERS, build_model

CHECKPOINT_FORMAT = "prunebench-checkpoint/2"  # /2: with a checksum


@dataclass
class Architecture:
    """Everything needed to rebuild a (possibly pruned) model, in plain JSON-able types."""

    model: str
    num_classes: int
    in_channels: int
    image_size: int
    options: dict[str, Any] = field(default_factory=dict)
    kept: dict[str, list[int]] = field(default_factory=dict)  # group -> kept original channel ids

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "options": dict(self.options),
            "kept": {k: list(v) for k, v in self.kept.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Architecture:
        return cls(**{**d, "kept": {k: [int(i) for i in v] for k, v in d["kept"].items()}})

    def example_input(self, batch: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.randn(batch, self.in_channels, self.image_size, self.image_size, device=device)


@dataclass
class ChannelGroup:
    """One set of coupled output channels that must be pruned together."""

    name: str
    size: int
    out_layers: list[str]  # conv/linear layers whose output channels these are
    norm_layers: list[str]  # normalisation layers on these channels
    root: nn.Module = field(repr=False)
    root_fn: Any = field(repr=False)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _is_out_fn(fn: Any) -> bool:
    # Compare with ==: Torch-Pruning's handlers are bound methods, never identical objects.
    return (
        fn == tp.prune_conv_out_channels
        or fn == tp.prune_linear_out_channels
        or fn == tp.prune_depthwise_conv_out_channels
    )


def build_graph(model: nn.Module, example_input: torch.Tensor) -> tp.DependencyGraph:
    was_training = model.training
    with torch.enable_grad():
        dg = tp.DependencyGraph().build_dependency(
            model, example_inputs=example_input, customized_pruners=CUSTOMIZED_PRUNERS, verbose=False
        )
    model.train(was_training)
    return dg


def _out_fn(module: nn.Module) -> Any:
    return tp.prune_linear_out_channels if isinstance(module, nn.Linear) else tp.prune_conv_out_channels


def channel_groups(model: nn.Module, dg: tp.DependencyGraph) -> list[ChannelGroup]:
    """The prunable channel groups of ``model`` in module order, each named by its first
    output layer in module order."""
    order = {m: i for i, (_, m) in enumerate(model.named_modules())}
    names = {m: n for n, m in model.named_modules()}
    ignored = [model.get_submodule(n) for n in model.unprunable]
    opaque = tuple(CUSTOMIZED_PRUNERS)
    groups = []
    for g in dg.get_all_groups(ignored_layers=ignored, root_module_types=(nn.Conv2d, nn.Linear)):
        if any(isinstance(item.dep.target.module, opaque) for item in g):
            continue
        outs: set[nn.Module] = set()
        norms: set[nn.Module] = set()
        for item in g:
            module = item.dep.target.module
            if _is_out_fn(item.dep.handler):
                outs.add(module)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                norms.add(module)
        outs_sorted = sorted(outs, key=order.__getitem__)
        root = outs_sorted[0]
        groups.append(
            ChannelGroup(
                name=names[root],
                size=len(g[0].idxs),
                out_layers=[names[m] for m in outs_sorted],
                norm_layers=[names[m] for m in sorted(norms, key=order.__getitem__)],
                root=root,
                root_fn=_out_fn(root),
            )
        )
    return sorted(groups, key=lambda grp: order[grp.root])


def remove_channels(
    model: nn.Module, arch: Architecture, remove: dict[str, list[int]], min_channels: int = 1
) -> Architecture:
    """Physically remove channels (CURRENT indices per group) from ``model`` in place.

    Returns the new architecture record. Refuses to leave a group with fewer than
    ``min_channels`` channels."""
    dg = build_graph(model, arch.example_input(device=_device(model)))
    groups = {g.name: g for g in channel_groups(model, dg)}
    kept = {name: list(ids) for name, ids in arch.kept.items()}
    for name, idxs in remove.items():
        idxs = sorted(set(int(i) for i in idxs))
        if not idxs:
            continue
        group = groups[name]
        if group.size - len(idxs) < min_channels:
            raise ValueError(
                f"removing {len(idxs)} of {group.size} channels of {name} leaves fewer than {min_channels}"
            )
        current = kept.get(name, list(range(group.size)))
        tp_group = dg.get_pruning_group(group.root, group.root_fn, idxs)
        if not dg.check_pruning_group(tp_group):
            raise ValueError(f"Torch-Pruning refused to prune group {name} at {idxs}")
        tp_group.prune()
        drop = set(idxs)
        kept[name] = [orig for i, orig in enumerate(current) if i not in drop]
    return Architecture(arch.model, arch.num_classes, arch.in_channels, arch.image_size, dict(arch.options), kept)


def dense_architecture(
    model_name: str, num_classes: int, in_channels: int, image_size: int, options: dict[str, Any] | None = None
) -> Architecture:
    return Architecture(model_name, num_classes, in_channels, image_size, dict(options or {}), {})


def _prune_to(model: nn.Module, arch: Architecture) -> nn.Module:
    """Prune a DENSE ``model`` of ``arch.model`` down to ``arch``'s kept channels, in place."""
    if arch.kept:
        dg = build_graph(model, arch.example_input())
        groups = {g.name: g for g in channel_groups(model, dg)}
        unknown = set(arch.kept) - set(groups)
        if unknown:
            raise ValueError(f"architecture names groups {sorted(unknown)} that {arch.model} does not have")
        for name, keep in arch.kept.items():
            drop = sorted(set(range(groups[name].size)) - set(keep))
            if drop:
                dg.get_pruning_group(groups[name].root, groups[name].root_fn, drop).prune()
    return model


def _dense_model(arch: Architecture) -> nn.Module:
    return build_model(arch.model, arch.num_classes, arch.in_channels, arch.image_size, arch.options)


def instantiate(arch: Architecture, state_dict: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Build the model of ``arch``: a fresh dense model with every removed channel pruned away."""
    model = _prune_to(_dense_model(arch), arch)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model


def rewind_weights(arch: Architecture, dense_state: dict[str, torch.Tensor]) -> nn.Module:
    """The model of ``arch`` with the kept channels' weights taken from a DENSE state (epoch k)."""
    dense = _dense_model(arch)
    dense.load_state_dict(dense_state)
    return _prune_to(dense, arch)


def save_checkpoint(path: str | Path, arch: Architecture, model: nn.Module, **extra: Any) -> None:
    """Save a checkpoint (with its checksum) loadable with ``torch.load(..., weights_only=True)``."""
    atomic_torch_save(
        {"format": CHECKPOINT_FORMAT, "arch": arch.to_dict(), "state_dict": model.state_dict(), **extra}, path
    )


def load_checkpoint(path: str | Path) -> tuple[Architecture, nn.Module, dict[str, Any]]:
    """(architecture, model, extra records) of a checkpoint; a DamagedFileError names a file that
    is missing, damaged, or not a prunebench checkpoint."""
    blob = load_torch(path)
    if blob.get("format") != CHECKPOINT_FORMAT:
        raise DamagedFileError(f"{path} is not a prunebench checkpoint (format {blob.get('format')!r})")
    try:
        arch = Architecture.from_dict(blob["arch"])
        model = instantiate(arch, blob["state_dict"])
    except Exception as e:  # a record that passed its checksum but does not build: another version wrote it
        raise DamagedFileError(f"{path} does not rebuild its model ({type(e).__name__}: {e})") from None
    extra = {k: v for k, v in blob.items() if k not in ("format", "arch", "state_dict")}
    return arch, model, extra
