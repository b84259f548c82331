"""The real Snakefile on configs/smoke.yaml: tables, no-op rerun, targeted reruns, refusals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO

pytestmark = pytest.mark.slow


def snakemake_cmd(workdir: Path, configfile: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(configfile), "--cores", "2", *args]  # fmt: skip


def snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(workdir, configfile, *args), capture_output=True, text=True, timeout=600)


# A results directory with a space, beside a file named like its first word, and an experiment
# named with a space, a quote and an equals sign: a shell command that leaves a path unquoted
# breaks the run or overwrites that file.
RESULTS = "my results"
ODD = "ilp rewind0 'k=0'"


def study(tmp: Path, name: str, edit=None) -> Path:
    cfg = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    cfg["results"] = str(tmp / RESULTS)
    cfg["experiments"][ODD] = cfg["experiments"].pop("ilp_rewind0")
    if edit:
        edit(cfg)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    config = study(tmp, "smoke")
    (tmp / "my").write_text("notes")
    done = snakemake(tmp, config)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp / "my").read_text() == "notes"
    return tmp, config


def test_aap_runs_wait_for_a_preflight_on_the_trained_dense_model(smoke):
    tmp, _ = smoke
    checks = sorted((tmp / RESULTS / "preflight" / "lenet5").glob("*.txt"))
    assert [p.stem for p in checks] == ["aap_p", "aap_params"]  # the AAP experiments, not ilp or matched
    for p in checks:
        text = p.read_text()
        assert "dense trained" in text and text.rstrip().endswith("ok")
        # Round 1 of the real run (seed 0, T = 0) removed what the preview's round 1 did.
        rounds = pd.read_csv(tmp / RESULTS / f"runs/lenet5/{p.stem}/seed0/rounds.csv")
        first = int(text.split("of 4: ")[1].split()[0])
        assert rounds.loc[rounds["round"] == 1, "removed"].item() == first


def test_a_run_repeating_an_earlier_experiments_first_rounds_runs_after_it_and_reuses_them(smoke):
    tmp, _ = smoke
    runs = tmp / RESULTS / "runs" / "lenet5"
    for seed in (0, 1):
        log = (runs / "aap_params" / f"seed{seed}" / "log.txt").read_text()
        assert f"reusing the round trained by lenet5-aap_p-seed{seed} (round 1)" in log
        a, b = (
            pd.read_csv(runs / e / f"seed{seed}" / "rounds.csv").set_index("round") for e in ("aap_p", "aap_params")
        )
        assert a.loc[1, ["params", "val_top1", "test_top1", "wall_s"]].equals(
            b.loc[1, ["params", "val_top1", "test_top1", "wall_s"]]
        )
    assert not any("reusing" in (runs / "ilp" / s / "log.txt").read_text() for s in ("seed0", "seed1"))


@pytest.mark.full
def test_a_study_whose_thresholds_cannot_prune_stops_before_its_aap_runs(tmp_path):
    config = study(tmp_path, "smoke")
    cfg = yaml.safe_load(config.read_text())
    cfg["experiments"] = {"raw": cfg["experiments"]["aap_p"]}
    cfg["experiments"]["raw"]["prune"]["policy_options"] = {"target": 5.0, "lambda0": 1e-6, "units": "raw"}
    cfg["seeds"] = [0]
    config.write_text(yaml.safe_dump(cfg))
    done = snakemake(tmp_path, config)
    assert done.returncode != 0
    assert "FAIL" in (tmp_path / RESULTS / "logs/preflight/lenet5-raw.log").read_text()
    assert not (tmp_path / RESULTS / "runs/lenet5/raw/seed0/rounds.csv").exists()


def test_smoke_study_writes_the_tables(smoke):
    tmp, _ = smoke
    tables = tmp / RESULTS / "tables"
    runs = pd.read_csv(tables / "runs.csv")
    assert len(runs) == 10
    assert set(runs["experiment"]) == {"ilp", "aap_p", "aap_p_random_arch", "aap_params", ODD}
    summary = pd.read_csv(tables / "summary.csv")
    assert len(summary) == 5 and (summary["seeds"] == 2).all() and summary["val_top1_std"].notna().all()
    dense = pd.read_csv(tables / "dense.csv")
    assert len(dense) == 2  # one per seed: the rewind ablation takes another snapshot of the same model
    assert (dense["images"] == 3 * 400).all()  # 3 epochs of 500 - 100 (validation) images
    rounds = pd.read_csv(tables / "rounds.csv")
    assert (rounds.groupby("run_id")["final"].sum() == 1).all()
    latency = pd.read_csv(tables / "latency.csv")  # dense and final model of every run, 1 thread, 2 backends
    assert len(latency) == 40 and (latency["fps_mean"] > 0).all()
    assert sorted(latency["backend"].unique()) == ["eager", "torchscript_frozen"]
    final = latency[latency["variant"] == "final"].set_index("run_id")["params"]
    assert (final == runs.set_index("run_id")["params"].loc[final.index]).all()
    devices = pd.read_csv(tables / "devices.csv")  # no device CSVs in the smoke study: the host's rows
    assert len(devices) == 40 and set(devices["source"]) == {"host"}


def test_the_export_holds_every_runs_dense_and_final_model_for_device_bench(smoke):
    tmp, _ = smoke
    manifest = json.loads((tmp / RESULTS / "export" / "manifest.json").read_text())
    entries = [(e["run_id"], e["variant"]) for m in manifest["models"] for e in m["entries"]]
    runs = pd.read_csv(tmp / RESULTS / "tables" / "runs.csv")["run_id"]
    assert sorted(entries) == sorted((r, v) for r in runs for v in ("dense", "final"))
    assert len([m for m in manifest["models"] if m["entries"][0]["variant"] == "dense"]) == 2  # one per seed


def test_the_report_puts_the_published_numbers_beside_the_reproduced_ones(smoke):
    tmp, _ = smoke
    results = tmp / RESULTS
    summary = pd.read_csv(results / "tables/summary.csv").set_index("experiment").loc["aap_params"]
    dense = pd.read_csv(results / "tables/dense.csv")["test_top1"]
    table = (results / "report/table5.md").read_text()
    rows = {line.split(" | ")[2]: line for line in table.splitlines()[2:]}  # by method
    # The experiment's row: Table 5's published AAP numbers, ours (mean ± std over the 2 seeds), Δ.
    aap = rows["AAP"]
    assert "-0.01" in aap and "99.34" in aap and "aap_params" in aap and "reproduced" in aap
    assert f"{summary['test_drop_mean']:.2f} ± {summary['test_drop_std']:.2f}" in aap
    assert f"{summary['params_reduction_mean'] - 99.34:+.2f}" in aap
    assert f"{int(summary['target_met'])}/2" in aap
    # Rows of other papers are quoted, the dense baseline is ours beside the paper's.
    assert "Liebenwein et al. 2019 (PFP) |  |  | quoted |" in rows["PFP"] and "0.35" in rows["PFP"]
    assert " 0.00 " in rows["AP+Coreset-K"]  # as printed in the paper
    assert "99.11" in rows["dense"] and f"{dense.mean():.2f} ± {dense.std():.2f}" in rows["dense"]
    tex = (results / "report/table5.tex").read_text()
    assert "\\toprule" in tex and "99.34" in tex and "$\\pm$" in tex
    # Table 1 as the study ran it (from runs.csv), beside the paper's LeNet-5 / MNIST row.
    schedule = (results / "report/table1.md").read_text().splitlines()[2]
    # ours, then the paper's: lr, milestones, epochs, weight decay, batch size
    assert schedule == (
        "| synthetic | lenet5 | lenet5 / mnist | 0.05 | 0.1 | none | N/A | 3 | 100 | 0.0 | 0.0 | 50 | 256 |"
    )
    report = (results / "REPORT.md").read_text()
    assert "## Table 5" in report and aap in report and "## Compute of every experiment" in report
    assert schedule in report
    # The paper's claims as measured verdicts (the study tests few of them), and its deviations.
    claims = {
        line.split(" | ")[0].lstrip("| "): line for line in (results / "report/claims.md").read_text().splitlines()
    }
    assert (
        " | yes | 4 |  | lenet5 aap_p: 2 of 2 runs; lenet5 aap_params: 2 of 2 runs |"
        in claims["targets met automatically"]
    )
    assert "aap_params − ilp: " in claims["AAP beats the baselines"]
    assert "| not run | 0 |  | needs " in claims["mean > max > sum"]
    assert "## The paper's claims, measured" in report and claims["real speedup"] in report
    assert "- Schedule: lenet5 on synthetic (paper's lenet5 / mnist): init_lr 0.05 (paper 0.1), epochs 3" in report
    assert "- Validation split: 100 training images" in report
    experiments = (results / "report/experiments.md").read_text()
    assert "| `aap_params` | aap | aap_params | " in experiments and experiments in report


def test_matched_runs_keep_their_reference_architecture(smoke):
    tmp, _ = smoke
    results = tmp / RESULTS
    runs = pd.read_csv(results / "tables" / "runs.csv").set_index(["experiment", "seed"])
    matched, reference = runs.loc["aap_p_random_arch"], runs.loc["aap_p"]
    assert (matched["policy"] == "matched").all() and (matched["method"] == "random").all()
    assert (matched["round"] == 1).all() and matched["target_met"].all()
    assert (matched["params"] == reference["params"]).all() and (matched["flops"] == reference["flops"]).all()
    for seed in (0, 1):
        run = json.loads((results / f"runs/lenet5/aap_p_random_arch/seed{seed}/run.json").read_text())
        assert run["reference"]["path"] == str(results / f"runs/lenet5/aap_p/seed{seed}/final.pt")


def test_smoke_study_counts_compute_and_pairs_aap_with_its_baselines(smoke):
    tmp, _ = smoke
    tables = tmp / RESULTS / "tables"
    rounds, runs = pd.read_csv(tables / "rounds.csv"), pd.read_csv(tables / "runs.csv").set_index("run_id")
    # Every epoch is one pass over the 400 training images (a round that removes nothing: 0 epochs).
    assert (rounds["images"] == rounds["epochs"] * 400).all()
    sums = rounds.groupby("run_id")[["epochs", "images", "wall_s"]].sum()
    assert (runs["train_epochs_total"] == sums["epochs"].loc[runs.index]).all()
    assert (runs["images_seen"] == sums["images"].loc[runs.index]).all()
    assert runs["train_wall_s"].to_numpy() == pytest.approx(sums["wall_s"].loc[runs.index].to_numpy())
    assert (runs["train_epochs_total"] >= 3).all()  # round 0, the dense training, is in every total
    targets = runs.groupby("experiment")[["target_metric", "target"]].first()
    assert targets.loc["ilp"].tolist() == ["params", 60] and targets.loc["aap_params"].tolist() == ["params", 60]
    assert targets.loc["aap_p"].isna().all()  # an accuracy target is no size target
    summary = pd.read_csv(tables / "summary.csv").set_index("experiment")
    assert (
        summary.loc["aap_params", "train_epochs_total_mean"]
        == runs.query("experiment == 'aap_params'")["train_epochs_total"].mean()
    )

    paired = pd.read_csv(tables / "paired.csv")
    assert list(paired.columns) == ["model", "experiment", "baseline", "metric", "mean_diff", "ci_low", "ci_high",
                                    "n_seeds"]  # fmt: skip
    assert set(zip(paired["experiment"], paired["baseline"], strict=True)) == {
        ("aap_params", "ilp"),  # not ODD (rewind 0): rounds of another schedule are no baseline
        ("aap_p", "aap_p_random_arch"),  # the matched control pairs with its reference
    }
    assert len(paired) == 10 and (paired["n_seeds"] == 2).all()
    assert (paired["ci_low"] <= paired["mean_diff"]).all() and (paired["mean_diff"] <= paired["ci_high"]).all()
    by_seed = runs.set_index(["experiment", "seed"])["test_top1"]
    diff = paired.set_index(["baseline", "metric"]).loc[("ilp", "test_top1"), "mean_diff"]
    assert diff == pytest.approx((by_seed["aap_params"] - by_seed["ilp"]).mean())

    # The choice by validation accuracy among several baselines is tested in test_tables.py.
    comparison = pd.read_csv(tables / "comparison.csv").set_index(["experiment", "role"])
    assert set(comparison.index) == {(e, r) for e in ("aap_params", "aap_p") for r in ("strongest", "weakest")}
    assert (comparison.loc["aap_params", "baseline"] == "ilp").all()
    assert (comparison.loc["aap_p", "baseline"] == "aap_p_random_arch").all()
    assert (comparison.loc["aap_params", "baseline_val_top1_mean"] == summary.loc["ilp", "val_top1_mean"]).all()
    assert (comparison.loc["aap_params", "aap_test_drop_mean"] == summary.loc["aap_params", "test_drop_mean"]).all()


def test_the_attention_table_scores_every_filter_of_the_adaptive_runs_dense_model_and_result(smoke):
    tmp, _ = smoke
    results = tmp / RESULTS
    attention = pd.read_csv(results / "tables/attention.csv")
    runs = pd.read_csv(results / "tables/runs.csv").set_index("run_id")
    layers = pd.read_csv(results / "tables/layers.csv")
    assert sorted(attention.run_id.unique()) == ["lenet5-aap_p-seed0", "lenet5-aap_params-seed0"]  # first seed
    assert set(attention.source) == {"train", "random"} and set(attention.p) == {1.0, 2.0, 4.0}
    for run_id, rows in attention.groupby("run_id"):
        result = int(runs.loc[run_id, "round"])
        assert set(rows["round"]) == {0, result}
        dense = rows[rows["round"] == 0].groupby("group")["channel"].nunique()
        assert (
            dense.to_dict()
            == layers[layers.run_id == run_id]
            .drop_duplicates("group")
            .set_index("group")["original_channels"]
            .to_dict()
        )
        if result:  # the result keeps what layers.csv says it keeps, by the dense model's channel ids
            kept = rows[rows["round"] == result].groupby("group")["channel"].nunique()
            after = layers[(layers.run_id == run_id) & (layers["round"] == result)].set_index("group")["channels_after"]
            assert kept.to_dict() == after.to_dict()
            assert set(rows[rows["round"] == result].channel) <= set(rows[rows["round"] == 0].channel)
        # Every filter of the dense model once per batch (4 of training images, 4 random) and p.
        assert len(rows[rows["round"] == 0]) == dense.sum() * (4 + 4) * 3


def test_the_maps_table_holds_one_layers_maps_of_the_highest_and_lowest_attention(smoke):
    tmp, _ = smoke
    maps = pd.read_csv(tmp / RESULTS / "tables/maps.csv")
    assert maps["group"].nunique() == 1 and maps["round"].eq(0).all()
    per_channel = maps.groupby("channel").agg(rank=("rank", "first"), attention=("attention", "first"))
    assert (per_channel["rank"] == "highest").sum() == (per_channel["rank"] == "lowest").sum() > 0
    # Each filter's attention is its map's mean |a| (p = 1), and every highest one is above every lowest.
    means = maps.groupby("channel")["value"].mean()
    assert means.round(5).to_dict() == per_channel["attention"].round(5).to_dict()
    by_rank = per_channel.groupby("rank")["attention"]
    assert by_rank.min()["highest"] >= by_rank.max()["lowest"]


def test_smoke_study_draws_the_figures(smoke):
    tmp, _ = smoke
    figures = tmp / RESULTS / "figures"  # the default place: <results>/figures
    names = {p.name for p in figures.iterdir()}
    expected = (
        "tradeoff", "iterative", "adaptive", "layers", "rewind", "speedup", "throughput", "maps", "attention",
        "distribution",
    )  # fmt: skip
    assert names == {f"{n}.{e}" for n in expected for e in ("pdf", "png")}
    # What each figure draws is tested in test_figures.py; here: every one was written, fonts embedded.
    pdfs = [(figures / f"{n}.pdf").read_bytes() for n in expected]
    assert all(b"/FontFile2" in pdf and b"/Type3" not in pdf for pdf in pdfs)


def test_snakemakes_html_report_holds_the_figures_tables_and_report(smoke):
    tmp, config = smoke
    html = tmp / "study report.html"
    done = snakemake(tmp, config, "--report", str(html))
    assert done.returncode == 0, done.stderr[-3000:]
    page = html.read_text()
    for name in ("tradeoff.png", "speedup.png", "throughput.png", "summary.csv", "paired.csv", "REPORT.md"):
        assert name in page
    assert "Figure 2a of the paper" in page  # a caption (workflow/report/iterative.rst)


def test_rerun_does_nothing(smoke):
    tmp, config = smoke
    dry = snakemake(tmp, config, "-n")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr


def test_moving_the_data_reruns_nothing_but_another_device_retrains(smoke):
    tmp, _ = smoke
    moved = study(tmp, "moved", lambda c: c.update(data_root=str(tmp / "elsewhere")))
    dry = snakemake(tmp, moved, "-n")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]
    out = snakemake(tmp, study(tmp, "gpu", lambda c: c.update(gpu=True)), "-n")
    out = out.stdout + out.stderr
    stats = out[out.index("Job stats") : out.index("total")]
    assert re.search(r"dense\s+2\n", stats) and re.search(r"prune\s+10\n", stats), stats


def test_tables_depend_on_every_run_table_they_read(smoke):
    tmp, config = smoke
    rounds = tmp / RESULTS / "runs/lenet5/ilp/seed0/rounds.csv"
    before, text = rounds.stat(), rounds.read_text()
    rounds.write_text(text + "\n")  # changed after the tables were written (Snakemake compares content)
    try:
        out = snakemake(tmp, config, "-n")
    finally:
        rounds.write_text(text)
        os.utime(rounds, ns=(before.st_atime_ns, before.st_mtime_ns))
    out = out.stdout + out.stderr
    stats = out[out.index("Job stats") : out.index("total")]
    assert re.search(r"tables\s+1\n", stats) and "prune" not in stats, stats


def test_a_changed_hyperparameter_reruns_exactly_its_jobs(smoke):
    tmp, _ = smoke

    def faster(cfg):
        cfg["experiments"]["ilp"]["prune"]["policy_options"]["rate"] = 0.25

    dry = snakemake(tmp, study(tmp, "changed", faster), "-n")
    out = dry.stdout + dry.stderr
    stats = out[out.index("Job stats") : out.index("total")]
    assert re.search(r"prune\s+2\n", stats) and "dense" not in stats, stats

    def longer_search(cfg):
        cfg["experiments"]["aap_p"]["prune"]["max_rounds"] = 5

    dry = snakemake(tmp, study(tmp, "reference_changed", longer_search), "-n")
    out = dry.stdout + dry.stderr
    stats = out[out.index("Job stats") : out.index("total")]
    assert re.search(r"prune\s+4\n", stats), stats  # aap_p and the runs matching its architecture


def test_a_bad_study_is_refused_by_the_snakefile_before_any_job(tmp_path):
    # The Snakefile refuses through study.check_study, whose table of cases is tests/test_study.py.
    result = snakemake(tmp_path, study(tmp_path, "bad", lambda c: c["models"].append("lenet999")), "-n")
    assert result.returncode != 0
    assert "unknown model 'lenet999'; choose one of" in result.stdout + result.stderr, result.stderr[-2000:]
    assert not (tmp_path / RESULTS).exists()


@pytest.mark.full
def test_snakemake_killed_mid_run_resumes_without_recomputing(tmp_path):
    def one_long_run(cfg):
        cfg["seeds"] = [0]
        cfg["experiments"] = {
            "ilp": {"prune": {"method": "ilp", "policy": "iterative", "policy_options": {"rate": 0.1, "target": 70}}}
        }

    config = study(tmp_path, "kill", one_long_run)
    results = tmp_path / RESULTS
    state = results / "runs/lenet5/ilp/seed0/state"
    proc = subprocess.Popen(snakemake_cmd(tmp_path, config), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while not (state / "round_002.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the study ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its running job, like a lost node
    proc.wait()
    assert not (results / "tables").exists()
    dense = results / "data/synthetic.json", results / "dense/lenet5/seed0/dense.json"
    # A round is finished once history.json lists it (a kill between its checkpoint and the
    # history recomputes it, to the same numbers).
    done = [state / f"round_{r['round']:03d}.pt" for r in json.loads((state / "history.json").read_text())["rounds"]]
    finished = {p: p.stat().st_mtime_ns for p in [*dense, *done]}

    # kill -9 leaves Snakemake's lock behind (Ctrl-C does not); --unlock removes only the lock.
    assert snakemake(tmp_path, config, "--unlock").returncode == 0
    again = snakemake(tmp_path, config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "rule dense" not in again.stderr and "rule data" not in again.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items()), "a finished job or round was recomputed"
    log = (results / "runs/lenet5/ilp/seed0/log.txt").read_text()  # the run's own log, kept across attempts
    assert "resuming lenet5-ilp-seed0 after round" in log
    assert (results / "tables/runs.csv").exists()


def test_config_overrides_apply_on_top_of_the_default_study(tmp_path):
    """`--config` alone (no --configfile) runs the default study with the overrides."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--cores", "2", "-n", "--config", "threads=3", f"results={tmp_path / 'r'}"]  # fmt: skip
    dry = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-2000:]
    assert re.search(r"prune\s+76\n", out) and str(tmp_path / "r") in out, out[-2000:]
