"""The paper's claims measured on runs.csv-shaped tables (prunebench.report.claims) and the
deviations list (prunebench.report.deviations)."""

import json

import numpy as np
import pandas as pd
import pytest

from prunebench.report.claims import claims_table
from prunebench.report.deviations import schedule_differences

AAP_OPTIONS = {"function": "mean", "p": 1.0, "source": "train"}


def run_rows(experiment, method, policy, test, *, options=None, val=None, met=None, model="vgg16", **extra):
    """One row per seed: test (and val) top-1 per seed, the rest shared."""
    val = val or test
    met = met or [True] * len(test)
    return [
        {
            "dataset": "cifar10",
            "model": model,
            "experiment": experiment,
            "method": method,
            "policy": policy,
            "method_options": json.dumps(options or {}, sort_keys=True),
            "policy_options": "{}",
            "loss_target": None,
            "rewind": "weights",
            "seed": seed,
            "target_met": met[seed],
            "target_metric": "params",
            "target": 60.0,
            "rewind_epoch": 144,
            "train_epochs": 160,
            "reference": None,
            "test_top1": t,
            "val_top1": val[seed],
            "params_reduction": 60.5,
            "train_epochs_total": 300,
            **extra,
        }
        for seed, t in enumerate(test)
    ]


def claim(runs, name, latency=None):
    table = claims_table(pd.DataFrame(runs), latency)
    return table.set_index("claim").loc[name]


def aap(experiment, test, **options):
    return run_rows(experiment, "aap", "one_shot", test, options={**AAP_OPTIONS, **options})


def test_mean_max_sum_are_ordered_pairwise_by_seed():
    runs = aap("mean", [93.0, 93.5, 92.8]) + aap("max", [92.5, 93.1, 92.2], function="max")
    runs += aap("sum", [92.0, 92.4, 91.9], function="sum")
    row = claim(runs, "mean > max > sum")
    assert row.verdict == "yes" and row.comparisons == 3 and row.seeds == 3
    assert "vgg16 mean − max: +0.50" in row.evidence and "max − sum: +0.50" in row.evidence
    assert "mean − sum: +1.00" in row.evidence
    # The other order: sum's top-1 above mean's in every seed.
    runs = aap("mean", [92.0, 92.4, 91.9]) + aap("sum", [93.0, 93.5, 92.8], function="sum")
    row = claim(runs, "mean > max > sum")
    assert row.verdict == "no" and row.comparisons == 1
    runs += aap("max", [92.5, 92.9, 92.3], function="max")
    assert claim(runs, "mean > max > sum").verdict == "no"


def test_a_difference_within_noise_or_of_one_seed_is_undecided():
    runs = aap("mean", [93.0, 92.0, 93.1]) + aap("max", [92.5, 92.9, 92.6], function="max")
    row = claim(runs, "mean > max > sum")
    assert row.verdict == "undecided" and "[" in row.evidence  # the interval is printed
    one = aap("mean", [93.0]) + aap("max", [92.0], function="max")
    assert claim(one, "mean > max > sum").verdict == "undecided"


def test_variants_compare_only_at_an_equal_size_and_other_options_fixed():
    runs = aap("mean", [93.0, 93.5]) + aap("max", [92.0, 92.5], function="max")
    for r in runs[2:]:
        r["target"] = 70.0
    assert claim(runs, "mean > max > sum").verdict == "not run"
    runs = aap("mean", [93.0, 93.5]) + aap("max", [92.0, 92.5], function="max", source="random")
    assert claim(runs, "mean > max > sum").verdict == "not run"
    runs = aap("mean", [93.0, 93.5]) + aap("max", [92.0, 92.5], function="max")
    for r in runs[2:]:
        r["policy_options"] = '{"scope": "layer"}'  # another reading of the policy, not the function alone
    assert claim(runs, "mean > max > sum").verdict == "not run"


def test_p_1_is_compared_with_every_larger_p():
    runs = aap("p1", [93.0, 93.4]) + aap("p2", [92.0, 92.2], p=2.0) + aap("p4", [92.4, 92.9], p=4.0)
    row = claim(runs, "p = 1 is best")
    assert row.comparisons == 2 and "p1 − p2" in row.evidence and "p1 − p4" in row.evidence


def test_runs_that_missed_their_target_are_left_out_of_the_pairs():
    runs = aap("mean", [93.0, 93.5, 10.0]) + aap("max", [92.5, 93.0, 92.0], function="max")
    runs[2]["target_met"] = False
    row = claim(runs, "mean > max > sum")
    assert row.seeds == 2 and row.verdict == "yes"


def test_attention_is_compared_with_l1_under_the_same_policy_or_in_its_architecture():
    iap = run_rows("iap", "aap", "iterative", [93.0, 93.2], options=AAP_OPTIONS)
    ilp = run_rows("ilp", "ilp", "iterative", [92.0, 92.1])
    one_shot_l1 = run_rows("l1", "l1", "one_shot", [91.0, 91.1])
    row = claim(iap + ilp + one_shot_l1, "attention beats L1")
    assert row.comparisons == 1 and "iap − ilp: +1.05" in row.evidence and row.verdict == "yes"
    matched = run_rows("iap_l1_arch", "l1", "matched", [92.5, 92.6], reference="iap", target_metric=None)
    assert claim(iap + matched, "attention beats L1").comparisons == 1
    random = run_rows("random", "random", "iterative", [80.0, 80.0])
    assert claim(iap + random, "attention beats L1").verdict == "not run"


def test_the_adaptive_policy_is_compared_with_fixed_rate_attention_and_with_every_baseline():
    adaptive = run_rows("aap", "aap", "aap_params", [93.0, 93.2, 93.1], options=AAP_OPTIONS, train_epochs_total=500)
    iap = run_rows("iap", "aap", "iterative", [92.0, 92.1, 92.0], options=AAP_OPTIONS)
    ilp = run_rows("ilp", "ilp", "iterative", [94.0, 94.1, 94.3])
    row = claim(adaptive + iap + ilp, "adaptive beats fixed-rate")
    assert row.comparisons == 1 and "aap − iap" in row.evidence and "epochs 500 vs 300" in row.evidence
    row = claim(adaptive + iap + ilp, "AAP beats the baselines")  # other methods: IAP is the claim above
    assert row.comparisons == 1 and "aap − ilp" in row.evidence and row.verdict == "no"


def rewind(experiment, epoch, test, val):
    return run_rows(experiment, "aap", "iterative", test, options=AAP_OPTIONS, val=val, rewind_epoch=epoch)


def test_the_best_rewind_epoch_in_and_out_of_the_band_is_chosen_by_validation_accuracy():
    runs = rewind("k128", 128, [93.0, 93.1], [90.0, 90.0])  # in the band (80 %), best by validation
    runs += rewind("k136", 136, [95.0, 95.0], [80.0, 80.0])  # in the band, best by test: not chosen
    runs += rewind("k40", 40, [92.0, 92.2], [85.0, 85.0])
    runs += rewind("k160", 160, [91.0, 91.0], [84.0, 84.0])
    row = claim(runs, "rewind to 75-90 %")
    assert "k128 − k40: +0.95" in row.evidence and row.verdict == "yes"
    assert "rewind epoch 128 vs 40 of 160" in row.evidence


def test_rewind_epochs_of_other_models_or_all_in_the_band_test_nothing():
    runs = rewind("k128", 128, [93.0, 93.1], [90.0, 90.0]) + rewind("k136", 136, [92.0, 92.1], [90.0, 90.0])
    assert claim(runs, "rewind to 75-90 %").verdict == "not run"
    other = run_rows("k40", "aap", "iterative", [92.0, 92.0], options=AAP_OPTIONS, rewind_epoch=40, model="resnet56")
    assert claim(runs[:2] + other, "rewind to 75-90 %").verdict == "not run"


def test_targets_met_counts_every_adaptive_run():
    runs = run_rows("aap", "aap", "aap_params", [93.0, 93.2], options=AAP_OPTIONS, met=[True, False])
    runs += run_rows("ilp", "ilp", "iterative", [92.0, 92.0], met=[False, False])
    row = claim(runs, "targets met automatically")
    assert row.verdict == "no (1 of 2 runs missed)" and "vgg16 aap: 1 of 2 runs" in row.evidence


def test_speedup_is_pruned_over_dense_throughput_of_aap_models_with_a_flops_cut():
    def timing(run_id, variant, flops, ms, method="aap"):
        return dict(
            run_id=run_id, model="vgg16", method=method, variant=variant, threads=1, flops=flops,
            fps_mean=1000 / ms, device="X", backend="eager",
        )  # fmt: skip

    latency = pd.DataFrame(
        [
            timing("a", "dense", 100, 10.0),
            timing("a", "final", 50, 6.0),
            timing("b", "dense", 100, 10.0),
            timing("b", "final", 100, 12.0),  # kept its FLOPs: no test of the claim
            timing("c", "dense", 100, 10.0, "ilp"),
            timing("c", "final", 40, 20.0, "ilp"),  # not AAP
        ]
    )
    runs = aap("mean", [93.0])
    row = claim(runs, "real speedup", latency)
    assert row.verdict == "yes" and "eager, 1 thread(s): 1.67-1.67x (FLOPs-ideal 2.00-2.00x, 1 models)" in row.evidence
    latency.loc[1, "fps_mean"] = 1000 / 11.0
    assert claim(runs, "real speedup", latency).verdict == "no"
    assert claim(runs, "real speedup", None).verdict == "not run"


def test_schedule_differences_name_each_key_that_differs_from_table_1():
    schedule = pd.DataFrame(
        [
            {
                "dataset": "cifar10_jpeg",
                "model": "vgg16",
                "paper's row": "vgg16 / cifar10",
                "init_lr ours": "0.1",
                "init_lr paper": "0.1",
                "lr_decay_epochs ours": "80 120",
                "lr_decay_epochs paper": "80 120",
                "epochs ours": "40",
                "epochs paper": "160",
                "batch_size ours": "none",
                "batch_size paper": "N/A",
            }
        ]
    )
    assert schedule_differences(schedule) == ["vgg16 on cifar10_jpeg (paper's vgg16 / cifar10): epochs 40 (paper 160)"]
    schedule.loc[0, "paper's row"] = "none"
    assert "has no schedule" in schedule_differences(schedule)[0]


@pytest.mark.parametrize("name", ["mean > max > sum", "rewind to 75-90 %", "attention beats L1"])
def test_a_claim_the_study_cannot_test_says_what_it_would_need(name):
    row = claim(run_rows("ilp", "ilp", "iterative", [92.0]), name)
    assert row.verdict == "not run" and row.evidence.startswith("needs ")


def test_attention_is_input_insensitive_where_every_layer_ranks_its_filters_alike_across_batches():
    def rows(noise):
        out = []
        gen = np.random.default_rng(0)
        for group in ("g0", "g1"):
            for source, batches in (("train", 3), ("random", 2)):
                for b in range(batches):
                    for c in range(10):
                        value = c + noise * gen.standard_normal()
                        out.append(dict(run_id="r", model="m", seed=0, round=0, group=group, channel=c,
                                        source=source, batch=b, p=1.0, attention=value))  # fmt: skip
        return pd.DataFrame(out)

    runs = pd.DataFrame(run_rows("ilp", "ilp", "iterative", [92.0]))
    row = claims_table(runs, None, rows(noise=0.1)).set_index("claim").loc["attention is input-insensitive"]
    assert row.verdict == "yes" and "real-real 1.00, real-random 1.00" in row.evidence
    row = claims_table(runs, None, rows(noise=5.0)).set_index("claim").loc["attention is input-insensitive"]
    assert row.verdict == "no"
    assert claims_table(runs, None, None).set_index("claim").loc["attention is input-insensitive"].verdict == "not run"
    # Layers of fewer than 3 filters have no ranking to compare: nothing measured, not a yes.
    few = rows(noise=0.1).query("channel < 2")
    row = claims_table(runs, None, few).set_index("claim").loc["attention is input-insensitive"]
    assert row.verdict == "not run" and "no layer with a ranking" in row.evidence


def test_a_pair_without_a_seed_where_both_met_their_targets_compares_nothing():
    adaptive = run_rows("aap", "aap", "aap_params", [93.0, 93.2], options=AAP_OPTIONS, met=[False, False])
    ilp = run_rows("ilp", "ilp", "iterative", [92.0, 92.1])
    row = claim(adaptive + ilp, "AAP beats the baselines")
    assert row.verdict == "no result (targets missed)"
    assert "no seed where both met their targets: vgg16 aap vs ilp" in row.evidence
    random = run_rows("random", "random", "iterative", [80.0, 80.5])
    ok = run_rows("aap2", "aap", "aap_params", [90.0, 91.0], options=AAP_OPTIONS)
    row = claim(adaptive + ilp + random + ok, "AAP beats the baselines")
    assert row.comparisons == 2 and "nan" not in row.evidence  # aap2 vs ilp and random; aap's pairs left out


def test_attention_is_compared_with_l1_only_under_the_same_policy_options_and_in_its_default_form():
    iap = run_rows("iap", "aap", "iterative", [93.0, 93.2], options=AAP_OPTIONS, policy_options='{"scope": "global"}')
    ilp = run_rows("ilp", "ilp", "iterative", [92.0, 92.1])  # layer-wise: another policy reading
    ilp_global = run_rows("ilp_global", "ilp_global", "iterative", [92.0, 92.1], policy_options='{"scope": "global"}')
    row = claim(iap + ilp + ilp_global, "attention beats L1")
    assert row.comparisons == 1 and "iap − ilp_global" in row.evidence
    p4 = run_rows("iap_p4", "aap", "iterative", [93.0, 93.2], options={**AAP_OPTIONS, "p": 4.0})
    assert claim(p4 + ilp, "attention beats L1").verdict == "not run"  # an ablation variant is no "attention"
