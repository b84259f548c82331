"""What a run config is checked for before any data is loaded or file written, beyond the key and
type checks of :mod:`prunebench.config.run`: the method, policy and their options, the dataset, the
model and its options, whether the model takes the dataset's images (a forward pass of an
initialised model) and has what the method needs (``Method.needs``). Single runs and every run
of a study go through :func:`check_run`."""

from __future__ import annotations

import copy
import json

import torch

from prunebench import surgery
from prunebench.config.run import Config
from prunebench.data.datasets import dataset_info
from prunebench.errors import ConfigError
from prunebench.score.contract import unmet_needs
from prunebench.select.policies import resolve_prune

# (model, options, dataset shape, the method's needs) already checked in this process: a study
# checks each once.
_fits: set[tuple] = set()


def check_run(cfg: Config) -> None:
    """Refuse, with a ConfigError naming the key and the choices, a config that cannot run."""
    method = resolve_prune(copy.deepcopy(cfg.prune))[0]
    info = dataset_info(cfg.data)
    shape = (info.num_classes, info.in_channels, info.image_size)
    key = (cfg.model.name, json.dumps(cfg.model.options, sort_keys=True), shape, type(method).needs, method.name)
    if key in _fits:
        return
    arch = surgery.dense_architecture(cfg.model.name, *shape, cfg.model.options)
    try:
        model = surgery.instantiate(arch)
        with torch.no_grad():
            model.eval()(arch.example_input())
    except ConfigError:  # unknown model or option: the registry's message names the choices
        raise
    except Exception as e:
        size = f"{info.in_channels}x{info.image_size}x{info.image_size}"
        raise ConfigError(
            f"model {cfg.model.name!r} (options {cfg.model.options}) does not take the {size} images of dataset "
            f"{cfg.data.dataset!r} ({type(e).__name__}: {e}); choose another model (`prunebench models`) or dataset"
        ) from None
    if type(method).needs:
        groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
        if (why := unmet_needs(type(method), groups)) is not None:
            raise ConfigError(f"{why} of model {cfg.model.name!r}; choose another model or method")
    _fits.add(key)
