"""Name -> model factory registry (one decorator, as in timm)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from prunebench.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    summary: str


MODELS: dict[str, ModelEntry] = {}

# Module types Torch-Pruning must treat as opaque nodes, with the pruner that does so.
CUSTOMIZED_PRUNERS: dict[type, Any] = {}

_FIXED_ARGS = ("num_classes", "in_channels", "image_size")


def register_model(name: str, summary: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = ModelEntry(name, factory, summary)
        return factory

    return decorate


def model_options(name: str) -> dict[str, Any]:
    """The options a model accepts beyond the fixed arguments, with their defaults."""
    params = inspect.signature(MODELS[name].factory).parameters
    return {k: p.default for k, p in params.items() if k not in _FIXED_ARGS}


def build_model(
    name: str, num_classes: int, in_channels: int, image_size: int, options: dict[str, Any] | None = None
) -> nn.Module:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    options = dict(options or {})
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"model {name!r} has no option(s) {unknown}; valid options: {sorted(valid) or 'none'}")
    model = MODELS[name].factory(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **options)
    if not hasattr(model, "unprunable"):
        raise TypeError(f"model factory {name!r} must set the 'unprunable' attribute")
    return model
