"""The figures draw what the tables hold (prunebench.report.figures): plotted series and points
checked against the input tables, the paper's points overlaid, one style."""

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from prunebench.report import figures
from prunebench.report.paper import load_published


def run(experiment, method, policy, seed, **values):
    row = dict(
        run_id=f"vgg16-{experiment}-seed{seed}",
        dataset="cifar10",
        model="vgg16",
        experiment=experiment,
        method=method,
        policy=policy,
        seed=seed,
        target_met=True,
        target_metric="params",
        target=60.0,
        loss_target=None,
        rewind_epoch=144,
        reference=None,
        round=2,
        params_reduction=60.0,
        test_drop=1.0,
    )
    return row | values


@pytest.fixture
def tables():
    runs = pd.DataFrame(
        [
            run("aap_params", "aap", "aap_params", 0, params_reduction=61.0, test_drop=0.5),
            run("aap_params", "aap", "aap_params", 1, params_reduction=63.0, test_drop=0.7),
            run("ilp", "ilp", "iterative", 0, test_drop=1.5),
            run("ilp", "ilp", "iterative", 1, test_drop=2.5, target_met=False),
            run("attn_max", "aap", "one_shot", 0, target=50.0, params_reduction=50.0),
            run("aap_acc", "aap", "aap_acc_params", 0, target_metric=None, target=None, loss_target=1.0),
        ]
    )
    rounds = pd.DataFrame(
        [
            {
                "run_id": f"vgg16-ilp-seed{seed}",
                "model": "vgg16",
                "experiment": "ilp",
                "round": r,
                "params_reduction": 20.0 * r + seed,
                "test_top1": 93.0 - r - seed,
                "test_drop": r + seed,
            }
            for seed in (0, 1)
            for r in range(4)
        ]
        + [
            {
                "run_id": "vgg16-aap_acc-seed0",
                "model": "vgg16",
                "experiment": "aap_acc",
                "round": r,
                "params_reduction": 10.0 * r,
                "flops_reduction": 5.0 * r,
                "val_drop": [0.0, 0.4, 1.3, 0.8][r],
                "rolled_back_to": [None, None, 1, None][r],
            }
            for r in range(4)
        ]
    )
    return rounds, runs


def data_points(ax):
    """(label, x, y) of every errorbar / line of an axes with a label."""
    return {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
        for line in ax.lines
        if not line.get_label().startswith("_")
    }


def test_tradeoff_puts_aap_and_its_baselines_apart_from_the_ablations(tables):
    rounds, runs = tables
    fig = figures.tradeoff(rounds, runs)
    compared, ablations = fig.axes[:2]
    assert "AAP and its baselines" in compared.get_title() and "ablations" in ablations.get_title()
    labels = compared.get_legend_handles_labels()[1]
    assert labels == ["aap_params (n=2)", "ilp (n=1, 1 missed the target)"]
    assert ablations.get_legend_handles_labels()[1] == ["aap_acc (n=1)", "attn_max (n=1)"]
    # The point is the mean over the runs that met their targets; its error bars their std.
    aap_point = next(c for c in compared.containers if c.get_label() == "aap_params (n=2)")
    x, y = aap_point.lines[0].get_data()
    assert (x[0], y[0]) == (62.0, pytest.approx(0.6))
    ilp_point = next(c for c in compared.containers if c.get_label().startswith("ilp"))
    assert ilp_point.lines[0].get_data()[1][0] == 1.5  # seed 1 missed its target: left out
    # One colour per method in every panel: aap's is the palette's first.
    assert mcolors.to_hex(aap_point.lines[0].get_color()) == figures.PALETTE[0].lower()


def test_iterative_draws_each_round_as_the_mean_over_seeds_with_the_papers_levels(tables):
    rounds, runs = tables
    runs = runs.assign(model="vgg16")
    fig = figures.iterative(rounds, runs, load_published())
    ax = fig.axes[0]
    ilp = next(c for c in ax.containers if c.get_label() == "ilp (n=2)")
    x, y = ilp.lines[0].get_data()
    assert list(x) == [0.5, 20.5, 40.5, 60.5] and list(y) == [92.5, 91.5, 90.5, 89.5]
    # Figure 2a's params levels of VGG-16 (the paper gives its accuracies only in the figure).
    levels = sorted(line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":")
    assert levels == [9.92, 57.73, 69.56]


def test_iterative_says_so_when_the_study_has_no_fixed_rate_experiments(tables):
    rounds, runs = tables
    fig = figures.iterative(rounds, runs[runs.policy != "iterative"], load_published())
    assert "no fixed-rate iterative experiments" in fig.axes[0].texts[0].get_text()


def test_adaptive_draws_the_search_its_rollbacks_and_its_target(tables):
    rounds, runs = tables
    fig = figures.adaptive(rounds, runs[runs.experiment == "aap_acc"], load_published())
    ax, twin = fig.axes
    lines = data_points(ax)
    assert lines["validation accuracy loss"] == ([0, 1, 2, 3], [0.0, 0.4, 1.3, 0.8])
    assert lines["rolled back"] == ([2], [1.3])
    assert lines["loss target"][1] == [1.0, 1.0]
    assert lines["result"][0] == [2, 2]  # the run's result round
    assert data_points(twin)["params reduction"] == ([0, 1, 2, 3], [0.0, 10.0, 20.0, 30.0])
    assert "the paper: first rollback, end" not in lines  # VGG-16 is not Figure 2b's ResNet-56
    resnet = figures.adaptive(
        rounds.assign(run_id="resnet56-aap_acc-seed0"),
        runs[runs.experiment == "aap_acc"].assign(model="resnet56", run_id="resnet56-aap_acc-seed0"),
        load_published(),
    )
    paper = [
        line.get_xdata()[0] for line in resnet.axes[0].lines if line.get_linestyle() == "--" and line.get_color() == "k"
    ]
    assert paper == [25.0, 39.0]  # Figure 2b: the first rollback at round 25, the end after round 39


def timing(run_id, method, variant, flops, ms, model="resnet56", threads=1, device="Test CPU", experiment=None):
    return dict(
        run_id=run_id,
        dataset="cifar10_jpeg",  # the paper's CIFAR-10 re-encoded: its Table 6 points apply
        model=model,
        method=method,
        experiment=experiment or method,
        seed=0,
        variant=variant,
        backend="eager",
        threads=threads,
        flops=flops,
        fps_mean=1000 / ms,
        fps_std=0.1,
        device=device,
    )


def test_speedup_plots_measured_points_the_flops_ideal_and_the_papers_pi_points():
    speed = pd.DataFrame(
        [
            timing("a", "aap", "dense", 100, 10.0),
            timing("a", "aap", "final", 50, 8.0),
            timing("b", "ilp", "dense", 100, 10.0),
            timing("b", "ilp", "final", 25, 5.0),
            timing("a", "aap", "dense", 100, 40.0, device="Raspberry Pi 4 Model B Rev 1.4"),
            timing("a", "aap", "final", 50, 25.0, device="Raspberry Pi 4 Model B Rev 1.4"),
        ]
    )
    fig = figures.speedup(speed, load_published())
    assert [ax.get_title() for ax in fig.axes] == [
        "resnet56 on Raspberry Pi 4 Model B Rev 1.4",
        "resnet56 on Test CPU",
    ]  # one panel per device
    pi = fig.axes[0]
    assert [[50.0, 1.6]] in [c.get_offsets().tolist() for c in pi.collections]
    ax = fig.axes[1]
    points = {
        c.get_label(): c.get_offsets().tolist()
        for c in ax.collections
        if len(c.get_offsets()) and not c.get_label().startswith("_")
    }
    measured = [
        c.get_offsets().tolist() for c in ax.collections if c.get_label().startswith("_") and len(c.get_offsets())
    ]
    assert np.allclose(measured[0], [[50.0, 1.25]]) and np.allclose(measured[1], [[75.0, 2.0]])
    # Table 6's ResNet-56 on the Raspberry Pi 3B+: FLOPs ↓ 33.77 % -> 1.20x, 56.33 % -> 1.49x.
    assert points["the paper: AAP on a Raspberry Pi 3B+"] == [[33.77, 1.2], [56.33, 1.49]]
    ideal = next(line for line in ax.lines if line.get_label().startswith("FLOPs-ideal"))
    x, y = ideal.get_data()
    assert np.allclose(y, 100 / (100 - x))
    # The paper's points are of its models on its datasets: none for a ResNet-56 on another one.
    other = figures.speedup(speed.assign(dataset="tiny_imagenet"), load_published())
    assert "the paper: AAP on a Raspberry Pi 3B+" not in other.axes[0].get_legend_handles_labels()[1]


def test_throughput_bars_are_fps_per_model_with_the_papers_pi_throughputs():
    speed = pd.DataFrame(
        [
            timing("a", "aap", "dense", 100, 50.0),
            timing("a", "aap", "final", 44, 25.0, experiment="aap_f56"),
            timing("b", "aap", "dense", 100, 50.0),
            timing("b", "aap", "final", 66, 40.0, experiment="aap_f34"),
        ]
    )
    fig = figures.throughput(speed, load_published())
    ax = fig.axes[0]
    bars = [round(p.get_height(), 3) for p in ax.patches]
    assert bars == [20.0, 25.0, 40.0]  # dense, then the pruned results by FLOPs cut (34 %, 56 %)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["dense", "aap_f34\n-34% FLOPs", "aap_f56\n-56% FLOPs"]
    paper = [c.get_offsets().tolist() for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
    # Fig. 7: dense ResNet-56 17.63 fps on the Pi 3B+; pruned = 17.63 x Table 6's 1.20 and 1.49.
    assert np.allclose(paper[0], [[0, 17.63]])
    assert np.allclose(paper[1], [[1, 17.63 * 1.20]]) and np.allclose(paper[2], [[2, 17.63 * 1.49]])


def test_every_figure_file_embeds_truetype_fonts(tmp_path):
    import matplotlib.pyplot as plt

    with plt.rc_context(figures.STYLE):
        files = figures._save(figures._empty("nothing"), tmp_path, "empty")
    pdf = files[0].read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType embedded, no Type 3
    assert [f.suffix for f in files] == [".pdf", ".png"]


def attention_rows():
    """Two rounds of one run: 3 groups, channels 0-3 (round 2 keeps 0 and 2 of g1), 2 real and
    1 random batch, p = 1 and 2; attention = channel + batch / 10 (+ 1 for random inputs)."""
    rows = []
    for rnd in (0, 2):
        for group in ("g0", "g1", "g2"):
            channels = [0, 2] if rnd == 2 and group == "g1" else range(4)
            for source, batch in (("train", 0), ("train", 1), ("random", 0)):
                for p in (1.0, 2.0):
                    for c in channels:
                        value = c + batch / 10 + (source == "random") + (p - 1) * 10 + rnd
                        rows.append(("r", "m", "e", 0, rnd, group, c, source, batch, "mean", p, value))
    columns = ["run_id", "model", "experiment", "seed", "round", "group", "channel", "source", "batch", "function"]
    return pd.DataFrame(rows, columns=[*columns, "p", "attention"])


def test_attention_draws_one_line_per_batch_of_the_dense_model_per_layer_and_p():
    fig = figures.attention(attention_rows())
    axes = [ax for ax in fig.axes]
    assert [ax.get_title() for ax in axes] == [f"{g}, p = {p}" for p in (1, 2) for g in ("g0", "g1", "g2")]
    g1_p2 = axes[4]
    lines = sorted((list(line.get_ydata()), line.get_linestyle()) for line in g1_p2.lines)
    # Round 0 only (the dense model): all four channels; batch b of training images, the random batch dashed.
    assert lines == [([10.0, 11.0, 12.0, 13.0], "-"), ([10.1, 11.1, 12.1, 13.1], "-"), ([11.0, 12.0, 13.0, 14.0], "--")]


def test_distribution_boxes_each_layers_per_filter_attention_of_the_dense_and_the_pruned_model():
    fig = figures.distribution(attention_rows())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["g0", "g1", "g2"]
    assert ax.get_legend_handles_labels()[1] == ["round 0 (dense)", "round 2"]
    medians = [line.get_ydata()[0] for line in ax.lines if line.get_color() == "k"]
    # p = 1, training images only, each filter's mean over the batches (+ 0.05): the dense model's
    # g0, g1, g2, then round 2's (g1 keeps channels 0 and 2: median 1 + 2 + 0.05).
    assert medians == pytest.approx([1.55, 1.55, 1.55, 3.55, 3.05, 3.55])


def test_rewind_draws_top1_and_stability_over_the_rewind_epoch_of_each_sweep(tables):
    _, runs = tables
    ilp = runs[runs.experiment == "ilp"].assign(train_epochs=160, target_met=True)
    sweep = pd.concat(
        [
            ilp.assign(
                experiment=f"ilp_k{k}", rewind_epoch=k, test_top1=90 + k / 40 + ilp.seed, stability_l2=10 - k / 16
            )
            for k in (40, 80, 144)
        ]
    )
    fig = figures.rewind(sweep)
    top, stability = fig.axes
    x, y = top.containers[0].lines[0].get_data()
    assert list(x) == [25.0, 50.0, 90.0] and list(y) == pytest.approx([91.5, 92.5, 94.1])  # seeds 0 and 1
    assert list(stability.containers[0].lines[0].get_data()[1]) == pytest.approx([7.5, 5.0, 1.0])
    band = top.patches[0].get_x(), top.patches[0].get_x() + top.patches[0].get_width()
    assert band == (75.0, 90.0)  # the paper's 75-90 % of training
    assert "no experiments that differ only in their rewind epoch" in figures.rewind(runs).axes[0].texts[0].get_text()


def test_maps_draws_each_chosen_filters_map_titled_with_its_attention():
    rows = [
        dict(
            run_id="r",
            model="m",
            round=0,
            group="conv2",
            channel=c,
            rank=rank,
            attention=att,
            y=y,
            x=x,
            value=att * (1 + y + 2 * x),
        )  # fmt: skip
        for c, rank, att in ((7, "highest", 2.0), (3, "highest", 1.0), (5, "lowest", 0.0))
        for y in range(2)
        for x in range(3)
    ]
    fig = figures.maps(pd.DataFrame(rows))
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["filter 7: 2.000", "filter 3: 1.000", "filter 5: 0.000"]
    assert panels[0].images[0].get_array().tolist() == [[2.0, 6.0, 10.0], [4.0, 8.0, 12.0]]  # rows y, columns x
    assert panels[0].images[0].get_clim() == (0, 12.0)  # one colour scale for every map
    assert "no activation maps" in figures.maps(None).axes[0].texts[0].get_text()
