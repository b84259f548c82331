"""Per-filter attention of a run's models over several input batches: the data of the paper's
Figures 3 and 5 (attention per filter of chosen layers for different batches of real images and
of random inputs, p = 1, 2, 4) and 9 (attention distribution per layer, original vs pruned).

Attention is AAP's score (``methods/aap.py``: function F over |a|^p of each filter's map, the
batch mean), computed here for round 0 (the dense model) and the run's result round by default,
on ``batches`` batches of training images (normalised, unaugmented; each drawn with its own seed)
and ``random`` batches of standard-normal inputs, for each p. The rows are long-form: one per
(run, round, group, channel, source, batch, p); ``channel`` is the channel's index in the dense
model, so one filter is followed across rounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from prunebench import paths, surgery
from prunebench.config.run import load_config, resolve_device
from prunebench.data.loaders import make_loaders
from prunebench.errors import ConfigError
from prunebench.io import read_json
from prunebench.score.activations import attention_points, group_statistics
from prunebench.score.contract import ScoringContext, make_method
from prunebench.train.loop import seeded_generator

ATTENTION_COLUMNS = [
    "run_id", "model", "experiment", "seed", "round", "group", "channel", "source", "batch", "function", "p",
    "attention",
]  # fmt: skip


def _round_models(run_dir: Path, summary: dict, rounds: list[int] | None) -> dict[int, Path]:
    """Checkpoint of each chosen round: round 0 (dense) and the result round by default."""
    chosen = rounds if rounds is not None else sorted({0, int(summary["final_round"])})
    found = {r: paths.round_checkpoint(run_dir / paths.RUN_STATE, r) for r in chosen}
    if missing := [r for r, path in found.items() if not path.exists()]:
        raise ConfigError(
            f"{run_dir} has no checkpoint of round(s) {missing} (state/round_NNN.pt); its rounds are "
            f"0-{summary['rounds']}: choose among them with --rounds"
        )
    return found


def filter_attention(
    run_dir: Path,
    rounds: list[int] | None = None,
    batches: int = 4,
    random: int = 4,
    ps: tuple[float, ...] = (1.0, 2.0, 4.0),
    function: str = "mean",
    overrides: list[str] | None = None,
) -> pd.DataFrame:
    """The attention of every filter of ``run_dir``'s models at ``rounds`` (``ATTENTION_COLUMNS``)."""
    cfg = load_config(run_dir / paths.RUN_CONFIG, overrides)
    summary = read_json(run_dir / paths.SUMMARY, checked=True)
    experiment = read_json(run_dir / paths.RUN_RECORD, checked=True)["experiment"]
    chosen = _round_models(run_dir, summary, rounds)
    device = resolve_device(cfg.train.device)
    loaders = make_loaders(cfg.data, cfg.train, device)
    size = cfg.prune.score_batch_size or cfg.train.batch_size
    inputs = [
        ("train", b, *loaders.train.sample(size, seeded_generator(cfg.seed, "attention", b))) for b in range(batches)
    ]
    shape = (size, *loaders.train.sample(1, seeded_generator(cfg.seed, "attention", 0))[0].shape[1:])
    for b in range(random):
        x = torch.randn(shape, generator=seeded_generator(cfg.seed, "attention-random", b))
        inputs.append(("random", b, x.to(device), None))
    methods = {p: make_method("aap", {"function": function, "p": p}) for p in ps}
    rows = []
    for rnd, path in chosen.items():
        arch, model, _ = surgery.load_checkpoint(path)
        model.to(device).eval()
        groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input(device=device)))
        for source, b, x, y in inputs:
            for p, method in methods.items():
                with torch.no_grad():
                    scores = method.score(
                        ScoringContext(model, groups, x, seeded_generator(cfg.seed, "score", rnd), rnd, y)
                    )
                for g in groups:
                    kept = arch.kept.get(g.name, range(g.size))
                    for channel, value in zip(kept, scores[g.name].tolist(), strict=True):
                        rows.append(
                            (
                                summary["run_id"],
                                cfg.model.name,
                                experiment,
                                cfg.seed,
                                rnd,
                                g.name,
                                int(channel),
                                source,
                                b,
                                function,
                                p,
                                value,
                            )
                        )
    return pd.DataFrame(rows, columns=ATTENTION_COLUMNS)


def attention_table(run_dirs: list[Path], **options: Any) -> pd.DataFrame:
    """``filter_attention`` of every run in ``run_dirs``, concatenated (``options``: its keywords)."""
    return pd.concat([filter_attention(d, **options) for d in run_dirs], ignore_index=True)


MAP_COLUMNS = ["run_id", "model", "round", "group", "channel", "rank", "attention", "y", "x", "value"]
SHOWN_MAPS = 8  # channels of the highest and of the lowest attention in the maps (Figure 1a)


def layer_maps(model: torch.nn.Module, groups: list, x: torch.Tensor) -> tuple[str, torch.Tensor] | None:
    """(group, its maps |a| [C, H, W] for the one image ``x``) of the middle group read at one
    attention point whose maps are spatial; None where no group is. There a map's mean is AAP's
    score itself (a coupled group's score averages maps that may differ in size, e.g. around a
    strided depthwise conv)."""
    points = attention_points(model, groups, x)
    single = {m: g for m, g in points.items() if list(points.values()).count(g) == 1}
    with torch.no_grad():
        outputs = group_statistics(model, single, x, lambda a: a.abs()[0])
    spatial = [g.name for g in groups if g.name in outputs and outputs[g.name][0].numel() > 1]
    if not spatial:
        return None
    group = spatial[len(spatial) // 2]
    return group, outputs[group]


def activation_maps(run_dir: Path, overrides: list[str] | None = None) -> pd.DataFrame:
    """The paper's Figure 1a: the activation maps |a| of one layer of ``run_dir``'s dense model
    for one training image, its ``SHOWN_MAPS`` channels of the highest and of the lowest attention
    (mean of |a| over the map, p = 1: AAP's score on that image); the layer is ``layer_maps``'s
    (none: no rows)."""
    cfg = load_config(run_dir / paths.RUN_CONFIG, overrides)
    summary = read_json(run_dir / paths.SUMMARY, checked=True)
    device = resolve_device(cfg.train.device)
    loaders = make_loaders(cfg.data, cfg.train, device)
    x, _ = loaders.train.sample(1, seeded_generator(cfg.seed, "attention-map", 0))
    arch, model, _ = surgery.load_checkpoint(_round_models(run_dir, summary, [0])[0])
    # Its channel c is the dense model's channel c: round 0 keeps them all.
    model.to(device).eval()
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input(device=device)))
    found = layer_maps(model, groups, x)
    if found is None:
        return pd.DataFrame(columns=MAP_COLUMNS)
    group, maps = found
    attention = maps.flatten(1).mean(1)
    order = attention.argsort(descending=True).tolist()
    n = min(SHOWN_MAPS, len(order) // 2)
    rows = []
    for rank, chosen in (("highest", order[:n]), ("lowest", order[-n:])):
        for c in chosen:
            h, w = maps[c].shape
            for y in range(h):
                for xx in range(w):
                    rows.append((summary["run_id"], cfg.model.name, 0, group, c, rank, float(attention[c]), y, xx,
                                 float(maps[c, y, xx])))  # fmt: skip
    return pd.DataFrame(rows, columns=MAP_COLUMNS)


def first_activation_maps(run_dirs: list[Path], overrides: list[str] | None = None) -> pd.DataFrame:
    """``activation_maps`` of the first of ``run_dirs`` whose model has spatial maps (an MLP's
    "maps" are single values); no rows when none has."""
    for d in run_dirs:
        maps = activation_maps(d, overrides)
        if not maps.empty:
            return maps
    return pd.DataFrame(columns=MAP_COLUMNS)
