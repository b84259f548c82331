"""The study tables' logic on small hand-made tables: size targets, pairing, t-intervals, the
choice of the strongest and weakest baseline (by validation accuracy, never test)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from prunebench.report.tables import (
    COMPARISON_COLUMNS,
    PAIRED_COLUMNS,
    T95,
    comparison_table,
    experiment_pairs,
    inherit_reference_targets,
    paired_table,
    size_target,
    summary_table,
    t95,
)

# experiment: (method, policy, target_metric, target, reference)
EXPERIMENTS = {
    "aap_params60": ("aap", "aap_params", "params", 60.0, None),
    "aap_flops60": ("aap", "aap_flops", "flops", 60.0, None),
    "aap_p": ("aap", "aap_acc_params", None, None, None),
    "ilp": ("ilp", "iterative", "params", 60.0, None),
    "iap": ("aap", "iterative", "params", 60.0, None),  # attention at a fixed rate: a baseline
    "l1": ("l1", "one_shot", "params", 60, None),  # 60 and 60.0 are one target
    "ilp90": ("ilp", "iterative", "params", 90.0, None),
    "ilp_flops": ("ilp", "iterative", "flops", 60.0, None),
    "aap_params60_b": ("aap", "aap_params", "params", 60.0, None),  # adaptive: never a baseline
    "ilp_adaptive": ("ilp", "aap_params", "params", 60.0, None),  # adaptive, but not AAP's scores
    "l1_matched": ("l1", "matched", None, None, "aap_p"),  # AAP-P's channel counts
    "iap_rewind4": ("aap", "iterative", "params", 60.0, None),  # another schedule: no baseline
}
REWIND_EPOCH = {"iap_rewind4": 4}  # the others rewind to epoch 6


def run_rows(values: dict[str, dict[int, dict[str, float]]], model: str = "lenet5") -> pd.DataFrame:
    """Runs of ``model``: ``values[experiment][seed]`` = that run's metrics (others 0)."""
    rows = []
    for experiment, seeds in values.items():
        method, policy, metric, target, reference = EXPERIMENTS[experiment]
        for seed, metrics in seeds.items():
            rows.append(
                {
                    "dataset": "synthetic",
                    "model": model,
                    "experiment": experiment,
                    "method": method,
                    "policy": policy,
                    "seed": seed,
                    "target_metric": metric,
                    "target": target,
                    "reference": reference,
                    "rewind_epoch": REWIND_EPOCH.get(experiment, 6),
                    "target_met": True,
                    **{m: 0.0 for m in ("params_reduction", "flops_reduction", "val_top1", "test_top1")},
                    **{m: 0.0 for m in ("val_drop", "test_drop", "train_epochs_total", "images_seen", "train_wall_s")},
                    **metrics,
                }
            )
    return pd.DataFrame(rows)


def _t_coverage(q: float, df: int) -> float:
    """P(|T| <= q) for Student's t with ``df`` degrees of freedom (Simpson's rule)."""
    x = np.linspace(0.0, q, 20001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    f = np.exp(log_c - (df + 1) / 2 * np.log1p(x**2 / df))
    h = x[1] - x[0]
    return 2 * h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())


def test_t_quantiles():
    assert t95(1) == 12.706 and t95(4) == 2.776 and t95(30) == 2.042
    assert t95(31) == t95(1000) == 1.96
    with pytest.raises(ValueError):
        t95(0)
    # Every entry of the table is the 0.975 quantile rounded to three decimals.
    for df, q in enumerate(T95, start=1):
        assert _t_coverage(q - 0.0005, df) < 0.95 < _t_coverage(q + 0.0005, df), df


def test_size_targets_from_the_policy_options():
    assert size_target("iterative", {"rate": 0.2, "target": 80}) == ("params", 80.0)
    assert size_target("iterative", {"metric": "flops", "target": 50}) == ("flops", 50.0)
    assert size_target("iterative", {}) == ("params", 90.0)  # the policy's defaults
    assert size_target("one_shot", {"target": 60, "scope": "global"}) == ("params", 60.0)
    assert size_target("aap_params", {"target": 70, "lambda0": 0.1}) == ("params", 70.0)
    assert size_target("aap_flops", {"target": 70}) == ("flops", 70.0)
    for policy in ("aap_acc_params", "aap_acc_flops", "aap_min_loss", "aap_max_cuts", "matched"):
        assert size_target(policy, {"target": 1.0}) == (None, None)


def test_aap_experiments_pair_with_non_adaptive_baselines_at_their_target():
    runs = run_rows({e: {0: {}} for e in EXPERIMENTS})
    other_model = run_rows({"ilp": {0: {}}, "ilp_flops": {0: {}}}, model="resnet20")
    pairs = experiment_pairs(pd.concat([runs, other_model], ignore_index=True))
    got = {(m, a, b) for m, a, b in pairs[["model", "experiment", "baseline"]].itertuples(index=False)}
    assert got == {
        ("lenet5", "aap_params60", "ilp"),
        ("lenet5", "aap_params60", "iap"),
        ("lenet5", "aap_params60", "l1"),
        ("lenet5", "aap_params60_b", "ilp"),
        ("lenet5", "aap_params60_b", "iap"),
        ("lenet5", "aap_params60_b", "l1"),
        ("lenet5", "aap_flops60", "ilp_flops"),
        ("lenet5", "aap_p", "l1_matched"),  # no size target, but matched to it
    }


def test_paired_differences_over_common_seeds_with_a_t_interval():
    runs = run_rows(
        {
            # seed 2 has no ilp run and seed 3 no AAP run: only seeds 0 and 1 are paired
            "aap_params60": {s: {"test_top1": t, "train_epochs_total": 20} for s, t in [(0, 80), (1, 84), (2, 0)]},
            "ilp": {s: {"test_top1": t, "train_epochs_total": 8} for s, t in [(0, 70), (1, 71), (3, 99)]},
            "l1": {0: {"test_top1": 75.0}},
        }
    )
    paired = paired_table(runs)
    assert list(paired.columns) == PAIRED_COLUMNS
    assert set(paired["metric"]) == {"test_top1", "val_top1", "params_reduction", "flops_reduction",
                                     "train_epochs_total"}  # fmt: skip
    row = paired.set_index(["baseline", "metric"]).loc[("ilp", "test_top1")]
    assert row["n_seeds"] == 2 and row["mean_diff"] == pytest.approx(11.5)  # diffs 10 and 13
    half = 12.706 * np.std([10, 13], ddof=1) / math.sqrt(2)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((11.5 - half, 11.5 + half))
    epochs = paired.set_index(["baseline", "metric"]).loc[("ilp", "train_epochs_total")]
    assert epochs["mean_diff"] == 12 and epochs["ci_low"] == epochs["ci_high"] == 12
    one = paired.set_index(["baseline", "metric"]).loc[("l1", "test_top1")]
    assert one["n_seeds"] == 1 and one["mean_diff"] == 5 and np.isnan(one["ci_low"]) and np.isnan(one["ci_high"])


def test_the_strongest_baseline_is_chosen_by_validation_not_test_accuracy():
    # ilp is best on validation but worst on test; l1 the reverse; iap in between on both.
    runs = run_rows(
        {
            "aap_params60": {s: {"val_top1": 80.0, "test_top1": 79.0, "test_drop": 2.0} for s in (0, 1)},
            "ilp": {s: {"val_top1": 78.0 + s, "test_top1": 60.0, "test_drop": 21.0} for s in (0, 1)},
            "iap": {s: {"val_top1": 75.0, "test_top1": 70.0, "test_drop": 11.0} for s in (0, 1)},
            "l1": {s: {"val_top1": 70.0, "test_top1": 77.0, "test_drop": 4.0, "train_epochs_total": 7} for s in (0, 1)},
            "ilp90": {s: {"val_top1": 99.0, "test_top1": 99.0} for s in (0, 1)},  # another target
        }
    )
    table = comparison_table(runs)
    assert list(table.columns) == COMPARISON_COLUMNS
    by_role = table.set_index("role")
    assert len(table) == 2 and set(table["experiment"]) == {"aap_params60"} and (table["baselines"] == 3).all()
    assert by_role.loc["strongest", "baseline"] == "ilp"
    assert by_role.loc["weakest", "baseline"] == "l1"
    assert by_role.loc["strongest", "baseline_val_top1_mean"] == 78.5
    assert by_role.loc["strongest", "baseline_test_drop_mean"] == 21.0
    assert by_role.loc["weakest", "baseline_train_epochs_total_mean"] == 7
    assert (table["aap_test_drop_mean"] == 2.0).all() and (table["target"] == 60).all()


def test_summary_carries_the_target_and_the_ledger():
    runs = run_rows({"ilp": {s: {"train_epochs_total": 5 + s, "images_seen": 100 * (5 + s)} for s in (0, 1)}})
    summary = summary_table(runs)
    row = summary.iloc[0]
    assert row["seeds"] == 2 and row["target_metric"] == "params" and row["target"] == 60
    assert row["train_epochs_total_mean"] == 5.5 and row["images_seen_mean"] == 550
    assert row["train_epochs_total_std"] == pytest.approx(np.std([5, 6], ddof=1))


def test_runs_that_missed_their_target_are_not_compared():
    # AAP seed 1 missed the target (it kept the dense model): only seed 0 is a pair; l1 met on no
    # seed, so it is no candidate for the strongest baseline either.
    runs = run_rows(
        {
            "aap_params60": {
                0: {"test_top1": 80.0, "val_top1": 80.0, "test_drop": 2.0},
                1: {"test_top1": 90.0, "test_drop": 0.0, "target_met": False},
            },
            "ilp": {s: {"test_top1": 70.0, "val_top1": 70.0} for s in (0, 1)},
            "l1": {s: {"test_top1": 99.0, "val_top1": 99.0, "target_met": False} for s in (0, 1)},
        }
    )
    paired = paired_table(runs).set_index(["baseline", "metric"])
    assert paired.loc[("ilp", "test_top1"), "n_seeds"] == 1 and paired.loc[("ilp", "test_top1"), "mean_diff"] == 10
    assert "l1" not in paired.index.get_level_values(0)
    table = comparison_table(runs).set_index("role")
    assert (table["baseline"] == "ilp").all() and (table["baselines"] == 1).all()
    assert (table["aap_seeds"] == 1).all() and (table["aap_test_drop_mean"] == 2.0).all()
    assert summary_table(runs).set_index("experiment").loc["aap_params60", "target_met"] == 1


def test_a_matched_run_meets_its_target_only_where_its_reference_did():
    runs = run_rows({"aap_p": {0: {}, 1: {"target_met": False}}, "l1_matched": {0: {}, 1: {}}})
    met = inherit_reference_targets(runs).set_index(["experiment", "seed"])["target_met"]
    assert met[("l1_matched", 0)] and not met[("l1_matched", 1)] and met[("aap_p", 0)]
