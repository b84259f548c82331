"""Aggregation of run directories into the study's tidy tables.

- ``rounds.csv`` / ``layers.csv``: every run's rows, concatenated.
- ``runs.csv``: one row per run, its result round (``final``), with the stop reason, whether its
  target was met, its size target and its compute ledger (sums over all its rounds, round 0 =
  the dense training included).
- ``dense.csv``: one row per dense model used (dataset, model, seed, accuracy, size, and
  ``trained_by``: the method of a method's own dense model).
- ``summary.csv``: mean and std over seeds of the result rows, per (dataset, model, method, policy,
  experiment), with the number of seeds.
- ``paired.csv``: per AAP experiment and baseline at the same size target (or ``matched`` to it),
  the mean over common seeds of the per-seed difference AAP minus baseline, with a 95 % t-interval.
- ``comparison.csv``: per AAP experiment, its means beside the strongest and the weakest of those
  baselines, strongest and weakest by mean VALIDATION accuracy (the test set chooses nothing).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from prunebench import paths, surgery
from prunebench.errors import DamagedFileError
from prunebench.io import atomic_write_text, file_sha256, read_json
from prunebench.measure.cost import LATENCY_BACKENDS
from prunebench.score.contract import make_method

# Sums over every round of a run (round 0, the dense training, included): rounds.csv column.
LEDGER = {"train_epochs_total": "epochs", "images_seen": "images", "train_wall_s": "wall_s"}
SUMMARY_METRICS = [
    "params_reduction", "flops_reduction", "val_top1", "test_top1", "val_drop", "test_drop", *LEDGER,
]  # fmt: skip
PAIRED_METRICS = ["test_top1", "val_top1", "params_reduction", "flops_reduction", "train_epochs_total"]
# What a device CSV (workflow/scripts/device_bench.py) must hold to join a study's tables.
DEVICE_COLUMNS = (
    "device", "cpu", "backend", "threads", "run_id", "round", "variant", "flops", "fps_mean", "fps_std",
    "latency_ms", "checkpoint_sha256",
)  # fmt: skip
PAIRED_COLUMNS = ["model", "experiment", "baseline", "metric", "mean_diff", "ci_low", "ci_high", "n_seeds"]
# The AAP row's and each chosen baseline's means in comparison.csv (prefixed aap_ / baseline_).
COMPARED = [
    "val_top1_mean", "val_drop_mean", "test_drop_mean", "test_drop_std", "params_reduction_mean",
    "flops_reduction_mean", "train_epochs_total_mean", "images_seen_mean", "train_wall_s_mean",
]  # fmt: skip
COMPARISON_COLUMNS = [
    "dataset", "model", "experiment", "target_metric", "target", "role", "baseline", "baselines",
    "aap_seeds", "baseline_seeds", *(f"aap_{c}" for c in COMPARED), *(f"baseline_{c}" for c in COMPARED),
]  # fmt: skip
# The run's training schedule in runs.csv (train_<key>; milestones as "91 136"): Table 1's columns.
SCHEDULE_KEYS = ("lr", "milestones", "epochs", "weight_decay", "batch_size")
# Policies with a size target: the metric they fix (None: policy_options.metric).
SIZE_TARGET_POLICIES = {"iterative": None, "one_shot": None, "aap_params": "params", "aap_flops": "flops"}
LOSS_TARGET_POLICIES = ("aap_acc_params", "aap_acc_flops")  # their target: a validation accuracy loss

# Two-sided 95 % quantiles of Student's t (t_0.975) for df = 1..30; beyond 30 the normal 1.96
# (up to 4 % narrower: t_0.975 is 2.040 at df 31, 2.000 at df 60, 1.980 at df 120).
T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t95(df: int) -> float:
    """The two-sided 95 % Student-t quantile for ``df`` degrees of freedom (1.96 beyond 30)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return T95[df - 1] if df <= len(T95) else 1.96


def _write(df: pd.DataFrame, path: Path) -> Path:
    atomic_write_text(df.to_csv(index=False), path)
    return path


def size_target(policy: str, options: dict[str, Any]) -> tuple[str | None, float | None]:
    """(metric, reduction in percent) of a policy with a size target; (None, None) for the others
    (accuracy targets, ``matched``). Options left out take the policy's defaults."""
    if policy not in SIZE_TARGET_POLICIES:
        return None, None
    from prunebench.select.policies import all_policies

    defaults = {f.name: f.default for f in dataclasses.fields(all_policies()[policy].Options)}
    metric = SIZE_TARGET_POLICIES[policy] or options.get("metric", defaults["metric"])
    return metric, float(options.get("target", defaults["target"]))


def loss_target(policy: str, options: dict[str, Any]) -> float | None:
    """The largest acceptable validation accuracy loss (points) of an accuracy-target policy."""
    if policy not in LOSS_TARGET_POLICIES:
        return None
    from prunebench.select.policies import all_policies

    return float(options.get("target", all_policies()[policy].Options.target))


def _target_columns(policy: str, prune: dict[str, Any]) -> dict[str, Any]:
    options = prune.get("policy_options") or {}
    metric, target = size_target(policy, options)
    reference = options.get("reference") if policy == "matched" else None
    return {
        "target_metric": metric,
        "target": target,
        "loss_target": loss_target(policy, options),
        "reference": reference,
    }


def _cell(value: Any) -> Any:
    """A config value as one CSV cell: a list as its items separated by spaces."""
    return " ".join(map(str, value)) if isinstance(value, list) else value


def method_options(prune: dict[str, Any]) -> str:
    """The run's method options with the method's defaults filled in, as sorted JSON: variants of
    one method (AAP's mean / max / sum, p) are told apart by value, not by experiment name."""
    method = make_method(prune["method"], prune.get("method_options") or {}, prune.get("methods_path"))
    return json.dumps(dataclasses.asdict(method.options), sort_keys=True)


def _ledger(rounds: pd.DataFrame) -> dict[str, float]:
    # skipna=False: a run with rounds recorded before a column existed gets NaN, not a partial sum.
    return {
        total: rounds[column].sum(skipna=False) if column in rounds else math.nan for total, column in LEDGER.items()
    }


def is_aap(method: str, policy: str) -> bool:
    """An AAP experiment: attention scores under one of AAP's adaptive policies."""
    return method == "aap" and str(policy).startswith("aap_")


def experiment_pairs(runs: pd.DataFrame) -> pd.DataFrame:
    """Which baseline each AAP experiment is compared with: one row per (dataset, model,
    experiment, baseline). A baseline is a non-adaptive experiment (policy not ``aap_*``) of the
    same dataset and model at the same size target (``target_metric``, ``target``) and with the
    same rewind epoch (so rounds retrain as many epochs: an ablation of the schedule is no
    baseline), or one with policy ``matched`` whose ``reference`` is the AAP experiment
    (whatever its target)."""
    keys = ["dataset", "model", "experiment"]
    experiments = runs.drop_duplicates(keys)
    if "reference" not in experiments:
        experiments = experiments.assign(reference=None)
    rows = []
    for (dataset, model), exps in experiments.groupby(["dataset", "model"], sort=True):
        adaptive = exps["policy"].astype(str).str.startswith("aap_")
        baselines = exps[~adaptive]
        for a in exps[adaptive].itertuples():
            if not is_aap(a.method, a.policy):
                continue
            for b in baselines.itertuples():
                if same_size(a, b):
                    rows.append((dataset, model, a.experiment, b.experiment))
    return pd.DataFrame(rows, columns=["dataset", "model", "experiment", "baseline"])


# What a rewind-epoch sweep holds fixed: experiments equal in these, apart in train.rewind_epoch.
SWEEP_KEYS = [
    "dataset", "model", "method", "method_options", "policy", "policy_options", "target_metric", "target",
    "loss_target", "reference", "rewind", "round_to", *(f"train_{key}" for key in SCHEDULE_KEYS),
]  # fmt: skip


def rewind_sweeps(runs: pd.DataFrame) -> list[pd.DataFrame]:
    """The runs (every seed) of each group of experiments that differ only in their rewind epoch
    (``SWEEP_KEYS`` equal, two or more rewind epochs): the paper's Fig. 4 and its 75-90 % claim."""
    keys = [k for k in SWEEP_KEYS if k in runs]
    return [g for _, g in runs.groupby(keys, sort=True, dropna=False) if g["rewind_epoch"].nunique() >= 2]


def same_size(a: Any, b: Any) -> bool:
    """Whether experiment ``b`` (a row of runs.csv) is compared with ``a`` at an equal size: the
    same size target (``target_metric``, ``target``) and rewind epoch, or ``b`` keeps the
    channel counts of ``a`` (policy ``matched``, ``reference`` a)."""
    same_target = (
        pd.notna(a.target_metric)
        and b.target_metric == a.target_metric
        and math.isclose(float(b.target), float(a.target))
        and getattr(b, "rewind_epoch", None) == getattr(a, "rewind_epoch", None)
    )
    return same_target or (b.policy == "matched" and getattr(b, "reference", None) == a.experiment)


def per_seed(runs: pd.DataFrame, dataset: str, model: str, experiment: str) -> pd.DataFrame:
    mine = runs[(runs["dataset"] == dataset) & (runs["model"] == model) & (runs["experiment"] == experiment)]
    if mine["seed"].duplicated().any():
        raise ValueError(f"{model} {experiment}: more than one run of one seed")
    return mine.set_index("seed")


def inherit_reference_targets(runs: pd.DataFrame) -> pd.DataFrame:
    """A ``matched`` run meets its target only where its reference run (same dataset, model and
    seed) met its own: the architecture of a search that failed is no result to control for."""
    if "reference" not in runs or not (runs["policy"] == "matched").any():
        return runs
    met = runs.set_index(["dataset", "model", "experiment", "seed"])["target_met"].astype(bool)
    out = runs.copy()
    for i, r in out[out["policy"] == "matched"].iterrows():
        ref = met.get((r["dataset"], r["model"], r["reference"], r["seed"]), False)
        out.at[i, "target_met"] = bool(r["target_met"]) and bool(ref)
    return out


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Mean over common seeds of a's metric minus b's, with its 95 % t-interval (NaN bounds
    with one seed); ``n`` seeds (0: no common seed)."""

    mean: float
    low: float
    high: float
    n: int


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> PairedDifference:
    """``a`` and ``b``: one experiment's runs each, indexed by seed (``per_seed``)."""
    seeds = sorted(set(a.index) & set(b.index))
    n = len(seeds)
    if not n:
        return PairedDifference(math.nan, math.nan, math.nan, 0)
    diff = a.loc[seeds, metric].astype(float) - b.loc[seeds, metric].astype(float)
    mean = float(diff.mean())
    half = t95(n - 1) * float(diff.std(ddof=1)) / math.sqrt(n) if n >= 2 else math.nan
    return PairedDifference(mean, mean - half, mean + half, n)


def paired_table(runs: pd.DataFrame) -> pd.DataFrame:
    """``paired.csv``: for every pair of ``experiment_pairs``, per metric of ``PAIRED_METRICS``,
    the mean over the seeds where both runs met their targets of AAP minus baseline, and its
    95 % t-interval (mean +- t95(n - 1) * sd / sqrt(n); NaN bounds with one seed). A run that
    missed its target kept the dense model (or another size): comparing it would compare sizes,
    not methods. Pairs without such a common seed are left out."""
    rows = []
    met = runs[runs["target_met"].astype(bool)]
    for p in experiment_pairs(runs).itertuples():
        a = per_seed(met, p.dataset, p.model, p.experiment)
        b = per_seed(met, p.dataset, p.model, p.baseline)
        for metric in PAIRED_METRICS:
            d = paired_difference(a, b, metric)
            if d.n:
                rows.append((p.model, p.experiment, p.baseline, metric, d.mean, d.low, d.high, d.n))
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def speedup_pairs(speed: pd.DataFrame) -> pd.DataFrame:
    """Each timed pruned model (latency.csv, devices.csv) beside its run's dense model on the same
    device, backend and thread count: ``flops_reduction`` (%), ``speedup`` (throughput ratio,
    pruned / dense fps, as the paper's Table 6), ``ideal_speedup`` (dense / pruned FLOPs) and
    ``efficiency`` (speedup / ideal)."""
    keys = ["device", "backend", "threads", "run_id"]
    dense = speed[speed["variant"] == "dense"][[*keys, "flops", "fps_mean"]]
    pairs = speed[speed["variant"] != "dense"].merge(dense, on=keys, suffixes=("", "_dense"))
    ideal = pairs["flops_dense"] / pairs["flops"]
    speedup = pairs["fps_mean"] / pairs["fps_mean_dense"]
    return pairs.assign(
        flops_reduction=(1 - 1 / ideal) * 100, speedup=speedup, ideal_speedup=ideal, efficiency=speedup / ideal
    )


def devices_table(host: pd.DataFrame | None, device_csvs: Sequence[Path], run_dirs: Sequence[Path]) -> pd.DataFrame:
    """``devices.csv``: the host's rows (latency.csv) and every device CSV's, one table with a
    ``device`` column. A device row must name a run of the study and a model that run still has
    (its checkpoint's SHA-256): a CSV measured on an older run's export is refused, not mixed in."""
    checkpoints: dict[tuple[str, int], str] = {}
    for d in run_dirs:
        for rnd_file in sorted((d / paths.RUN_STATE).glob("round_*.pt")):
            run_id = pd.read_csv(d / paths.ROUNDS, usecols=["run_id"])["run_id"].iloc[0]
            checkpoints[(run_id, int(rnd_file.stem.split("_")[1]))] = file_sha256(rnd_file)
    frames = [] if host is None else [host]
    for csv in device_csvs:
        if not Path(csv).is_file():
            raise DamagedFileError(f"device CSV {csv} (study key device_results) not found")
        table = pd.read_csv(csv)
        missing = [c for c in DEVICE_COLUMNS if c not in table.columns]
        if missing:
            raise DamagedFileError(
                f"{csv} lacks columns {', '.join(missing)}: write it with workflow/scripts/device_bench.py"
            )
        for row in table.drop_duplicates(["run_id", "round"]).itertuples():
            known = checkpoints.get((row.run_id, int(row.round)))
            if known != row.checkpoint_sha256:
                why = "is not a run of this study" if known is None else "no longer has that model (it was rerun)"
                raise DamagedFileError(
                    f"{csv}: run {row.run_id} round {row.round} {why}; export the study again "
                    "(prunebench export) and measure it on the device again"
                )
        frames.append(table.assign(source=str(csv)))
    if not frames:
        return pd.DataFrame(columns=list(DEVICE_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """``summary.csv``: per experiment, the number of seeds, how many met their target, its size
    target and the mean and std over seeds of ``SUMMARY_METRICS``."""
    keys = ["dataset", "model", "experiment", "method", "policy"]
    grouped = runs.groupby(keys, sort=True)
    stats = grouped[SUMMARY_METRICS].agg(["mean", "std"])
    stats.columns = [f"{m}_{stat}" for m, stat in stats.columns]
    head = grouped.agg(
        seeds=("seed", "size"),
        target_met=("target_met", "sum"),
        target_metric=("target_metric", "first"),
        target=("target", "first"),
    )
    return head.join(stats).reset_index()


def comparison_table(runs: pd.DataFrame) -> pd.DataFrame:
    """``comparison.csv``: per AAP experiment with baselines (``experiment_pairs``), two rows,
    ``role`` strongest and weakest: the baseline with the highest and the lowest MEAN VALIDATION
    top-1 over its seeds (ties: the first by name), the AAP experiment's means (``aap_*``) beside
    that baseline's (``baseline_*``). Test accuracy never chooses; it is only reported. Means
    are over the runs that met their targets (``*_seeds`` counts them): a baseline with none is
    no candidate, and an AAP experiment with none gets NaN means."""
    keys = ["dataset", "model", "experiment"]
    means = summary_table(runs[runs["target_met"].astype(bool)]).set_index(keys)
    targets = runs.drop_duplicates(keys).set_index(keys)
    rows = []
    for (dataset, model, experiment), pairs in experiment_pairs(runs).groupby(keys, sort=True):
        key = (dataset, model, experiment)
        aap = means.loc[key] if key in means.index else pd.Series({"seeds": 0}, dtype=object)
        met = [(dataset, model, b) for b in sorted(pairs["baseline"]) if (dataset, model, b) in means.index]
        if not met:
            continue
        candidates = means.loc[met]
        by_val = candidates["val_top1_mean"]
        chosen = {"strongest": by_val.idxmax(), "weakest": by_val.idxmin()}
        for role, index in chosen.items():
            base = candidates.loc[index]
            rows.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "experiment": experiment,
                    "target_metric": targets.loc[key, "target_metric"],
                    "target": targets.loc[key, "target"],
                    "role": role,
                    "baseline": index[2],
                    "baselines": len(candidates),
                    "aap_seeds": aap["seeds"],
                    "baseline_seeds": base["seeds"],
                    **{f"aap_{c}": aap.get(c, math.nan) for c in COMPARED},
                    **{f"baseline_{c}": base[c] for c in COMPARED},
                }
            )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary.json, run.json) of a finished run, after checking that the files its summary
    vouches for (rounds.csv, layers.csv, final.pt, config.yaml, run.json) are the ones it
    wrote; otherwise a DamagedFileError names the file and how to write it again."""
    again = (
        f"; run the experiment again with the same config and --out {run_dir} (it resumes from its saved "
        f"rounds and writes its results again; in a study: snakemake --forcerun '{run_dir / 'summary.json'}')"
    )
    try:
        summary = read_json(run_dir / paths.SUMMARY, checked=True)
        run = read_json(run_dir / paths.RUN_RECORD, checked=True)
        if "experiment" not in run:
            raise DamagedFileError(f"{run_dir / 'run.json'} was written by an older prunebench (no experiment name)")
        for name, digest in summary["sha256"].items():
            path = run_dir / name
            if not path.is_file():
                raise DamagedFileError(f"{path} is missing")
            if file_sha256(path) != digest:
                raise DamagedFileError(f"{path} is damaged: it is not the file the run wrote")
    except DamagedFileError as e:
        raise DamagedFileError(f"{e}{again}") from None
    return summary, run


def stability_l2(run_dir: Path, dense_dir: Path) -> float:
    """Stability to pruning (Frankle et al. 2019; the paper's Fig. 4b): the L2 distance between
    the result's parameters and the dense model's at the end of training, restricted to the
    channels the result keeps."""
    arch, model, _ = surgery.load_checkpoint(run_dir / paths.FINAL)
    _, dense, _ = surgery.load_checkpoint(dense_dir / paths.DENSE_MODEL)
    original = surgery.rewind_weights(arch, dense.state_dict())
    with torch.no_grad():
        total = sum(float(((a - b) ** 2).sum()) for a, b in zip(model.parameters(), original.parameters(), strict=True))
    return math.sqrt(total)


def write_tables(run_dirs: list[Path], out: Path) -> list[Path]:
    """Write the seven tables for ``run_dirs`` into ``out``; returns their paths."""
    rounds, layers, runs, dense = [], [], [], {}
    for d in run_dirs:
        summary, run = read_run(d)
        r = pd.read_csv(d / paths.ROUNDS)
        config = yaml.safe_load((d / paths.RUN_CONFIG).read_text())
        r.insert(1, "experiment", run["experiment"])
        rounds.append(r)
        layers.append(pd.read_csv(d / paths.LAYERS))
        final = r[r["final"]].iloc[0].to_dict()
        runs.append(
            {
                **final,
                "stop_reason": summary["stop_reason"],
                "target_met": summary["target_met"],
                "rounds": summary["rounds"],
                "rollbacks_total": summary["rollbacks"],
                **_ledger(r),
                **_target_columns(final["policy"], config["prune"]),
                "method_options": method_options(config["prune"]),
                # The options beside the target (its own columns), to tell variants of one policy apart.
                "policy_options": json.dumps(
                    {
                        k: v
                        for k, v in (config["prune"].get("policy_options") or {}).items()
                        if k not in ("target", "reference")
                    },
                    sort_keys=True,
                ),
                "rewind": config["train"]["rewind"],
                "rewind_epoch": config["train"]["rewind_epoch"],
                # Latency-aware rounding tells a variant apart by value (configs omit the default 1).
                "round_to": config["prune"].get("round_to", 1),
                **{f"train_{key}": _cell(config["train"][key]) for key in SCHEDULE_KEYS},
                "stability_l2": stability_l2(d, Path(run["dense_dir"])),
            }
        )
        dense_dir = Path(run["dense_dir"])
        if dense_dir not in dense:
            record = read_json(dense_dir / paths.DENSE_RECORD, checked=True)
            if record["dense_hash"] != run["dense_hash"]:
                raise DamagedFileError(
                    f"{dense_dir} now holds another dense model (hash {record['dense_hash']}) than the one {d} pruned "
                    f"({run['dense_hash']}); run {d} again on the dense model there, or restore its own"
                )
            dense[dense_dir] = {
                "dataset": final["dataset"],
                "model": final["model"],
                "seed": final["seed"],
                "dense_hash": record["dense_hash"],
                "epochs": record["epochs"],
                "images": record.get("images"),
                "val_top1": record["val_top1"],
                "test_top1": record["test_top1"],
                "params": record["params"],
                "macs": record["macs"],
                "flops": record["flops"],
                "wall_s": record["wall_s"],
                "dense_dir": str(dense_dir),
                "trained_by": record.get("trained_by"),
            }
    runs_df = inherit_reference_targets(pd.DataFrame(runs))
    summary = summary_table(runs_df)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "rounds": pd.concat(rounds, ignore_index=True),
        "layers": pd.concat(layers, ignore_index=True),
        "runs": runs_df,
        "dense": pd.DataFrame(list(dense.values())),
        "summary": summary,
        "paired": paired_table(runs_df),
        "comparison": comparison_table(runs_df),
    }
    return [_write(written[name], out / f"{name}.csv") for name in paths.TABLES]


def latency_table(
    run_dirs: list[Path], threads: list[int], warmup: int, repeats: int, backends: Sequence[str] = LATENCY_BACKENDS
) -> pd.DataFrame:
    """This machine's throughput and latency (batch 1) of every run's dense model and final model,
    per backend (``eager``: the PyTorch module; ``torchscript_frozen``: traced, frozen and optimised
    for inference, as devices run the exported file) and thread count, timed by device_bench's
    protocol with the run's two models interleaved: one row per run x variant x backend x threads,
    in device_bench's columns. Run it alone on the machine."""
    from prunebench.measure.cost import complexity, device_bench, time_models
    from prunebench.measure.export import to_torchscript

    machine = device_bench.machine_record()
    rows = []
    for d in run_dirs:
        experiment = read_run(d)[1]["experiment"]
        table = pd.read_csv(d / paths.ROUNDS)
        final_round = int(table.loc[table["final"].astype(bool), "round"].iloc[0])
        entries = []
        for variant, rnd, path in (
            ("dense", 0, paths.round_checkpoint(d / paths.RUN_STATE, 0)),
            ("final", final_round, d / paths.FINAL),
        ):
            arch, model, _ = surgery.load_checkpoint(str(path))
            row = table[table["round"] == rnd].iloc[0]
            entries.append(
                (
                    model.eval(),
                    {
                        **{k: row[k] for k in ("run_id", "dataset", "model", "method", "policy", "seed")},
                        "experiment": experiment,
                        "round": rnd,
                        "variant": variant,
                        **complexity(model, arch.example_input()),
                        "input_shape": f"1x{arch.in_channels}x{arch.image_size}x{arch.image_size}",
                        "checkpoint_sha256": file_sha256(path),
                    },
                )
            )
        x = arch.example_input()
        for backend in backends:
            if backend == "eager":
                forwards = [lambda m=m, x=x: m(x) for m, _ in entries]
            else:
                frozen = [device_bench.frozen(to_torchscript(m, x)) for m, _ in entries]
                forwards = [lambda m=m, x=x: m(x) for m in frozen]
            for n in threads:
                before = device_bench.machine_state()
                timings = time_models(forwards, n, warmup, repeats)
                after = device_bench.machine_state()
                for (_, entry), timing in zip(entries, timings, strict=True):
                    rows.append(
                        {
                            **machine,
                            "backend": backend,
                            "backend_version": f"torch {torch.__version__}",
                            "threads": n,
                            **entry,
                            **timing,
                            "temp_c_before": before["temp_c"],
                            "temp_c_after": after["temp_c"],
                            "throttled_before": before["throttled"],
                            "throttled_after": after["throttled"],
                        }
                    )
    return pd.DataFrame(rows)
