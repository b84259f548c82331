"""Typed run configuration: dataclasses with defaults, loaded from YAML with strict key checks.

Every key has a default that is a no-op or the paper's choice; an unknown key is refused with the
valid keys of its section listed (and the closest match suggested).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import sys
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from prunebench.errors import ConfigError
from prunebench.measure.cost import LATENCY_REPEATS, LATENCY_WARMUP

# AAP paper, Table 1: (lr, LR decay epochs, epochs, weight decay) and Section 4's batch sizes.
TABLE1_PRESETS: dict[str, dict[str, Any]] = {
    "mnist/lenet5": dict(lr=0.1, milestones=[], epochs=100, weight_decay=0.0, batch_size=256),
    "mnist/lenet300_100": dict(lr=0.0012, milestones=[], epochs=100, weight_decay=0.0, batch_size=256),
    "cifar10/resnet56": dict(lr=0.1, milestones=[91, 136], epochs=182, weight_decay=2e-4, batch_size=128),
    "cifar10/resnet50": dict(lr=0.1, milestones=[91, 136], epochs=182, weight_decay=2e-4, batch_size=128),
    "cifar10/shufflenetv2": dict(lr=0.1, milestones=[60, 120, 160], epochs=200, weight_decay=4e-5, batch_size=128),
    "cifar10/mobilenetv2": dict(lr=0.1, milestones=[150, 225], epochs=300, weight_decay=4e-5, batch_size=128),
    "cifar10/vgg16": dict(lr=0.05, milestones=[150, 180, 210], epochs=240, weight_decay=5e-4, batch_size=128),
    "cifar10/vgg19": dict(lr=0.05, milestones=[150, 180, 210], epochs=240, weight_decay=5e-4, batch_size=128),
    "cifar10/lenet5": dict(lr=0.0002, milestones=[], epochs=24, weight_decay=1e-4, batch_size=128),
    "tiny_imagenet/resnet101": dict(lr=0.1, milestones=[150, 225], epochs=300, weight_decay=2e-4, batch_size=256),
    "tiny_imagenet/vgg19": dict(lr=0.1, milestones=[150, 225], epochs=300, weight_decay=2e-4, batch_size=256),
    "imagenet/resnet50": dict(lr=0.256, milestones=[30, 60, 80], epochs=90, weight_decay=1e-4, batch_size=64),
}


def _at_least(section: str, minimum: float, **values: Any) -> None:
    """Refuse any of ``values`` (key -> value; None: unset) below ``minimum``."""
    for key, value in values.items():
        if value is not None and value < minimum:
            raise ConfigError(f"{section}.{key} must be >= {minimum:g}, got {value!r}")


@dataclass
class SyntheticConfig:
    size: int = 32  # image side
    channels: int = 3
    classes: int = 10
    train: int = 2000  # images, before the validation split
    test: int = 500

    def __post_init__(self) -> None:
        _at_least("data.synthetic", 1, size=self.size, channels=self.channels, train=self.train, test=self.test)
        _at_least("data.synthetic", 2, classes=self.classes)


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # see prunebench.data.datasets.DATASETS
    root: str | None = None  # where datasets live; default $PRUNEBENCH_DATA or ~/.cache/prunebench/data
    mirror: str | None = None  # read-only offline copy; default $PRUNEBENCH_MIRROR
    download: bool = True  # let torchvision download when the data is missing
    val_size: int = 5000  # validation images carved from the training set
    split_seed: int = 0  # seed of that carve (shared by all runs, so all see the same split)
    train_subset: int | None = None  # use only this many training images (quick runs)
    test_subset: int | None = None  # evaluate on only N test images, a seeded random draw (quick runs)
    crop_padding: int | None = None  # random-crop padding; None: the dataset's default
    hflip: bool | None = None  # random horizontal flip; None: the dataset's default
    workers: int = 8  # DataLoader worker processes of streamed datasets (imagenet)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        _at_least("data", 0, val_size=self.val_size, crop_padding=self.crop_padding, workers=self.workers)
        _at_least("data", 1, train_subset=self.train_subset, test_subset=self.test_subset)

    def resolved_root(self) -> Path:
        root = self.root or os.environ.get("PRUNEBENCH_DATA") or "~/.cache/prunebench/data"
        return Path(root).expanduser()

    def resolved_mirror(self) -> Path | None:
        mirror = self.mirror or os.environ.get("PRUNEBENCH_MIRROR")
        return Path(mirror).expanduser() if mirror else None


@dataclass
class ModelConfig:
    name: str = "lenet5"  # see `prunebench models`... or prunebench.models.MODELS
    options: dict[str, Any] = field(default_factory=dict)  # model-specific, e.g. small_input


@dataclass
class TrainConfig:
    preset: str | None = None  # a TABLE1_PRESETS key; explicit keys below override it
    epochs: int = 10  # E: dense training epochs
    batch_size: int = 128
    eval_batch_size: int = 1000
    lr: float = 0.1
    milestones: list[int] = field(default_factory=list)  # epochs where lr *= gamma
    gamma: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    rewind_epoch: int = 0  # k: the state saved for rewinding; each round retrains E - k epochs
    rewind: str = "weights"  # weights | lr | finetune
    finetune_lr: float | None = None  # rewind=finetune: constant lr; None: the schedule's last lr
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch CPU threads; None: all cores
    channels_last: bool = False
    # fp32, or bf16: convs and matmuls of training and evaluation under bfloat16 autocast (weights,
    # gradients and the optimizer stay fp32), for GPUs with bf16 units; correct but slow on CPUs.
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"train.epochs must be >= 1, got {self.epochs}")
        if not 0 <= self.rewind_epoch < self.epochs:
            raise ConfigError(
                f"train.rewind_epoch must be in [0, epochs), got {self.rewind_epoch} with epochs={self.epochs}"
            )
        if self.rewind not in ("weights", "lr", "finetune"):
            raise ConfigError(f"train.rewind must be weights, lr or finetune, got {self.rewind!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"train.precision must be fp32 or bf16, got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"train.device must be auto, cpu or cuda, got {self.device!r}")
        if self.lr <= 0 or self.batch_size < 1:
            raise ConfigError("train.lr must be > 0 and train.batch_size >= 1")
        _at_least("train", 1, eval_batch_size=self.eval_batch_size, threads=self.threads)
        _at_least("train", 0, momentum=self.momentum, weight_decay=self.weight_decay)
        if not 0 < self.gamma <= 1 or self.momentum >= 1:
            raise ConfigError(
                f"train.gamma must be in (0, 1] and momentum in [0, 1), got {self.gamma}, {self.momentum}"
            )
        if self.finetune_lr is not None and self.finetune_lr <= 0:
            raise ConfigError(f"train.finetune_lr must be > 0, got {self.finetune_lr}")
        if any(m < 1 for m in self.milestones):
            raise ConfigError(f"train.milestones must be epochs >= 1, got {self.milestones}")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of a 0-based epoch under the multi-step schedule."""
        return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)


@dataclass
class PruneConfig:
    method: str = "ilp"  # see `prunebench methods`
    method_options: dict[str, Any] = field(default_factory=dict)
    policy: str | None = None  # None: the method's default policy
    policy_options: dict[str, Any] = field(default_factory=dict)
    min_channels: int = 1  # never leave a group with fewer channels
    max_rounds: int = 30  # round budget, whatever the policy
    # Latency-aware pruning: every group that loses channels keeps a multiple of this many (rounded
    # up; Torch-Pruning's round_to). 1: the paper's methods as they are. Not applied to `matched`.
    round_to: int = 1
    score_batch_size: int | None = None  # images for data-driven scores; None: train.batch_size
    methods_path: list[str] = field(default_factory=list)  # extra directories of method files
    method_source: str | None = None  # filled in by prunebench: hash of the method's file (its identity)

    def __post_init__(self) -> None:
        if self.min_channels < 1:
            raise ConfigError(f"prune.min_channels must be >= 1, got {self.min_channels}")
        if self.round_to < 1:
            raise ConfigError(f"prune.round_to must be >= 1 (1: no rounding), got {self.round_to}")
        if self.max_rounds < 1:
            raise ConfigError(f"prune.max_rounds must be >= 1, got {self.max_rounds}")


@dataclass
class MeasureConfig:
    latency: bool = True  # measure CPU latency of the dense and final models
    warmup: int = LATENCY_WARMUP
    repeats: int = LATENCY_REPEATS

    def __post_init__(self) -> None:
        _at_least("measure", 0, warmup=self.warmup)
        _at_least("measure", 1, repeats=self.repeats)


@dataclass
class Config:
    name: str = "run"  # run id
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------


def check_type(value: Any, tp: Any, key: str) -> Any:
    """``value`` as the annotation ``tp`` allows (ints are accepted as floats), or a ConfigError
    naming ``key`` (e.g. "config key 'train.lr'"), the value and the expected type; floats must
    be finite."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_type(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: {value!r} is not a valid {tp}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [check_type(v, item, key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return float(value)
    if tp is int and isinstance(value, bool) or not isinstance(value, tp):
        raise ConfigError(f"{key} must be {tp.__name__}, got {value!r}")
    return value


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or 'top level'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{prefix}{key}'{hint}; valid keys here: {', '.join(names)}")
    kwargs = {}
    for key, value in raw.items():
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = check_type(value, tp, f"config key '{prefix}{key}'")
    return cls(**kwargs)


def _apply_set(raw: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    node, cls = raw, Config
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
        cls = typing.get_type_hints(cls).get(part) if cls is not None else None
    value = _safe_load(text, f"--set {key}")
    section = typing.get_type_hints(cls).get(parts[-1]) if dataclasses.is_dataclass(cls) else None
    if dataclasses.is_dataclass(section) and not isinstance(value, dict):
        raise ConfigError(f"--set {key}: {key!r} is a section; set its keys (e.g. {key}.KEY=VALUE), got {text!r}")
    node[parts[-1]] = value


def config_from_dict(raw: dict[str, Any], overrides: list[str] | None = None) -> Config:
    raw = json.loads(json.dumps(raw or {}))  # deep copy
    for assignment in overrides or []:
        _apply_set(raw, assignment)
    train = raw.get("train") or {}
    preset = train.get("preset") if isinstance(train, dict) else None  # a non-mapping: refused by _build
    if preset is not None:
        if preset not in TABLE1_PRESETS:
            raise ConfigError(f"unknown train.preset {preset!r}; choose one of: {', '.join(TABLE1_PRESETS)}")
        raw["train"] = {**TABLE1_PRESETS[preset], **train}
    return _build(Config, raw, "")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"key {key!r} is given twice (line {key_node.start_mark.line + 1}); keep one")
            seen.add(key)
        return super().construct_mapping(node, deep)


def _safe_load(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML: {e}") from None


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping in a YAML or JSON file, or in standard input when ``path`` is ``-``. JSON is
    parsed as JSON: PyYAML (YAML 1.1) would read its numbers like 1e-06 as strings. An empty file
    is refused: it would silently run every default."""
    where = "standard input" if str(path) == "-" else f"config file {path}"
    try:
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text()
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} does not exist") from e
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        raw = _safe_load(text, where)
    if raw is None:
        raise ConfigError(f"{where} is empty; write the keys to change (e.g. name, data, model, train, prune)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of config keys, got {type(raw).__name__}")
    return raw


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> Config:
    """A config from a YAML (or JSON) file, or from standard input when ``path`` is ``-``."""
    return config_from_dict(read_config(path), overrides)


# Where data lives and how many loader processes read it: they never change a result.
MACHINE_KEYS = {
    ("data", "root"),
    ("data", "mirror"),
    ("data", "download"),
    ("data", "workers"),
}


def resolve_device(name: str) -> torch.device:
    """The torch device of ``train.device`` (auto: CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available here; use 'auto' or 'cpu'")
    return torch.device(name)


def execution(train: TrainConfig) -> dict[str, Any]:
    """How a run computes, resolved on this machine: the device type and the CPU threads. Both
    change results (reduction order differs with the thread count and between devices), so
    both are part of every identity below."""
    device = train.device if train.device != "auto" else resolve_device("auto").type  # checked where it runs
    return {"device": device, "threads": train.threads or torch.get_num_threads()}


def _digest(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _identity(cfg: Config, left_out: set[tuple[str, str]]) -> dict[str, Any]:
    out = cfg.to_dict()
    for section, key in MACHINE_KEYS | left_out | {("train", "threads"), ("train", "device")}:
        out.get(section, {}).pop(key, None)
    out["execution"] = execution(cfg.train)
    if (
        out["train"].get("precision") == "fp32"
    ):  # the default leaves identities of runs from before the key as they were
        del out["train"]["precision"]
    if out["prune"].get("round_to") == 1:  # likewise
        del out["prune"]["round_to"]
    return out


def config_hash(cfg: Config) -> str:
    """Identity of the experiment: every key that can change a result, with the device type and
    thread count it runs with; not where data lives."""
    return _digest(_identity(cfg, {("prune", "methods_path")}))


def training_identity(cfg: Config, left_out: frozenset[tuple[str, str]] = frozenset()) -> dict[str, Any]:
    """What a training (and evaluation) of ``cfg``'s model depends on besides its starting
    weights: seed, data, model, schedule, device and threads; not the pruning method."""
    d = _identity(cfg, set(left_out))
    return {k: d[k] for k in ("seed", "data", "model", "train", "execution")}


def dense_hash(cfg: Config, method_trains: bool = False) -> str:
    """Identity of the dense model, shared by every method pruning it whatever epoch it rewinds
    to (the dense directory holds a snapshot per rewind epoch; see prunebench.train.dense).
    ``method_trains``: the method trains its own (``Method.dense_loss``), keyed by its name,
    resolved options and source too."""
    left_out = {("train", key) for key in ("rewind", "rewind_epoch", "finetune_lr", "eval_batch_size")}
    identity = training_identity(cfg, frozenset(left_out))
    if method_trains:
        p = cfg.prune
        identity["method"] = {"name": p.method, "options": p.method_options, "source": p.method_source}
    return _digest(identity)
