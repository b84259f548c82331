"""The pruning-method plugin contract and its discovery.

A method is a subclass of ``Method`` in a ``.py`` file of a methods directory (the repository's
``methods/``, any directory in ``PRUNEBENCH_METHODS_PATH`` or the config's ``methods_path``), or
a class exposed by an installed package under the entry-point group ``prunebench.methods``.
The method scores channels; selection, policy, surgery, training and measurement belong to the
engine and are identical for every method.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import inspect
import os
import sys
import typing
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from prunebench.config.run import check_type
from prunebench.errors import ConfigError
from prunebench.score.activations import attention_points
from prunebench.surgery import ChannelGroup

BUILTIN_METHODS_DIR = Path(__file__).resolve().parents[2] / "methods"
ENTRY_POINT_GROUP = "prunebench.methods"
# The plugin-facing modules of prunebench 0.1, now behind prunebench.plugin.
_MOVED = {
    "prunebench.methods": "import Method and ScoringContext from prunebench.plugin",
    "prunebench.scores": "import filter_l1 and random_scores from prunebench.plugin",
    "prunebench.activations": "import group_statistics from prunebench.plugin",
}


@dataclass
class ScoringContext:
    """What a method may look at when it scores channels in one round."""

    model: nn.Module  # the current (already pruned) model, in eval mode
    groups: list[ChannelGroup]  # its prunable channel groups
    # The round's scoring images: prune.score_batch_size (default train.batch_size) training
    # images drawn with `generator`, normalised, unaugmented, on the model's device.
    batch: torch.Tensor
    generator: torch.Generator  # seeded by (run seed, round): use it for any randomness
    round: int
    labels: torch.Tensor | None = None  # the labels of `batch` (the engine always gives them)
    # A method with dense gates (Method.dense_gates): the scores its gates learned for the
    # current model's channels, per group (the dense model's, indexed by the channels kept).
    gates: dict[str, torch.Tensor] | None = None
    _points: dict[str, str] | None = field(default=None, repr=False)

    def attention_points(self) -> dict[str, str]:
        """Module name -> group name of the post-activation outputs of every group."""
        if self._points is None:
            self._points = attention_points(self.model, self.groups, self.batch[:2])
        return self._points


class Gates(nn.Module):
    """Per-channel gates a method learns in its own pre-pruning training (PAAM's attention).

    ``scores(model)`` gives every group's channels an analog score in [0, 1], computed from the
    model as it is at that step; it is called once per forward pass while the dense model trains,
    and the gates' parameters train with the model's (same optimiser and schedule). The engine
    multiplies ``multipliers(scores)`` (default: the scores themselves) into each group's feature
    maps, after its batch norms where it has them, else after its output layers, and folds them
    into those layers' weights for every saved snapshot: the dense model then computes exactly
    what the gated one did and has no gates. The last scores reach ``score()`` as
    ``ScoringContext.gates``. Gates must not draw random numbers after construction."""

    def scores(self, model: nn.Module) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def multipliers(self, scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return scores


class Method:
    """Base class of pruning methods. Subclasses set ``name`` and ``summary`` and implement
    ``score``; they may define a dataclass ``Options`` (fields with defaults) for their config
    keys under ``prune.method_options``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    default_policy: ClassVar[str] = "iterative"
    # The selection scope that is part of the method's definition ("layerwise": a fraction of
    # every group; "global": one ranking over all groups), or None when the policy's `scope`
    # option decides. A fixed scope cannot be overridden: each variant has its own name.
    scope: ClassVar[str | None] = None
    # What the method needs of a model, checked before any training (see REQUIREMENTS).
    needs: ClassVar[tuple[str, ...]] = ()

    @dataclass
    class Options:
        pass

    def __init__(self, options: Method.Options) -> None:
        self.options = options

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        """Importance of every channel of every group (1-D tensor of the group's current size;
        higher is more important, channels with the lowest scores are pruned)."""
        raise NotImplementedError

    def dense_loss(self, model: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor | None:
        """Pre-pruning training hook: a term added to the task loss while the dense model trains
        from scratch (network slimming's sparsity penalty). Defining it gives the method its own
        dense model, keyed by its name, options and source, instead of the one every other
        method shares (``trains_dense``)."""
        return None

    def dense_gates(self, model: nn.Module, groups: list[ChannelGroup]) -> Gates | None:
        """Pre-pruning training hook: learned channel gates (``Gates``) trained with the dense
        model from scratch. ``model`` is the freshly initialised dense model, on its device.
        Defining it gives the method its own dense model (``trains_dense``); in ``dense_loss``,
        ``model`` is then the gated model, whose ``.scores`` are the current batch's gate scores."""
        return None

    def extra_loss(self, model: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor | None:
        """Training hook for during-training methods: a term added to the task loss."""
        return None


def trains_dense(cls: type[Method]) -> bool:
    """Whether the method has its own pre-pruning training (it defines ``dense_loss`` or ``dense_gates``)."""
    return cls.dense_loss is not Method.dense_loss or cls.dense_gates is not Method.dense_gates


# Requirement -> (what a channel group must have, the test).
REQUIREMENTS: dict[str, tuple[str, typing.Callable[[ChannelGroup], bool]]] = {
    "batch_norm": ("a batch norm on its channels", lambda g: bool(g.norm_layers)),
}


def unmet_needs(method: type[Method], groups: list[ChannelGroup]) -> str | None:
    """Why ``method`` cannot prune a model with these channel groups, or None."""
    for need in method.needs:
        if need not in REQUIREMENTS:
            return (
                f"method {method.name!r} needs {need!r}, which prunebench does not know (known: {sorted(REQUIREMENTS)})"
            )
        what, test = REQUIREMENTS[need]
        if missing := [g.name for g in groups if not test(g)]:
            return f"method {method.name!r} needs {what} in every prunable group; these have none: {', '.join(missing)}"
    return None


def method_source(cls: type[Method]) -> str:
    """SHA-256 of the file defining ``cls``: part of every run's identity, so that editing a
    method reruns exactly its runs."""
    return hashlib.sha256(Path(inspect.getsourcefile(cls)).read_bytes()).hexdigest()[:16]


def build_options(cls: type, values: dict[str, Any], what: str) -> Any:
    """Instantiate an options dataclass, refusing unknown keys with the valid ones listed."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{what} has no option(s) {unknown}; valid options: {sorted(names) or 'none'}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a plugin's annotation we cannot resolve: its __post_init__ checks alone
        hints = {}
    values = {k: check_type(v, hints[k], f"{what} option '{k}'") if k in hints else v for k, v in values.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: {e}") from e


@functools.cache
def _load_file(path: Path) -> tuple[type[Method], ...]:
    """The method classes of one file, executed once per process: every discovery returns the
    same classes (a study's DAG discovers methods for each of its runs)."""
    module_name = f"prunebench_methods_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as e:
        if e.name in _MOVED:
            raise ConfigError(f"method file {path} imports {e.name}, moved in prunebench 0.2: {_MOVED[e.name]}") from e
        raise
    return tuple(
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Method) and obj is not Method and obj.__module__ == module_name
    )


def method_dirs(extra: list[str] | None = None) -> list[Path]:
    dirs = [BUILTIN_METHODS_DIR]
    env = os.environ.get("PRUNEBENCH_METHODS_PATH", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [Path(p) for p in extra or []]
    return dirs


def discover_methods(extra_dirs: list[str] | None = None) -> dict[str, type[Method]]:
    """All methods, by name: files in the method directories, then entry points."""
    found: dict[str, tuple[type[Method], str]] = {}

    def add(cls: type[Method], origin: str) -> None:
        if not cls.name:
            raise ConfigError(f"method class {cls.__name__} in {origin} has no 'name'")
        if cls.name in found and found[cls.name][1] != origin:
            raise ConfigError(f"method {cls.name!r} is defined twice: {found[cls.name][1]} and {origin}")
        found[cls.name] = (cls, origin)

    for d in method_dirs(extra_dirs):
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.py")):
            if not path.name.startswith("_"):
                for cls in _load_file(path):
                    add(cls, str(path))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        add(ep.load(), f"entry point {ep.value}")
    return {name: cls for name, (cls, _) in sorted(found.items())}


def make_method(name: str, options: dict[str, Any], extra_dirs: list[str] | None = None) -> Method:
    methods = discover_methods(extra_dirs)
    if not BUILTIN_METHODS_DIR.is_dir() and name not in methods:
        raise ConfigError(
            f"unknown method {name!r}: the built-in methods live in the repository's methods/ directory, "
            f"not found at {BUILTIN_METHODS_DIR}. Install from a clone with `pip install -e .`, or set "
            "PRUNEBENCH_METHODS_PATH to that methods/ directory."
        )
    if name not in methods:
        raise ConfigError(
            f"unknown method {name!r}; choose one of: {', '.join(methods)} (see `prunebench methods`; your own "
            "method files are found in the directories of PRUNEBENCH_METHODS_PATH or prune.methods_path)"
        )
    cls = methods[name]
    return cls(build_options(cls.Options, options, f"method {name!r}"))
