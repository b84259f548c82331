"""Parts of REPORT.md (prunebench.report.paper): the paper's rows beside ours, the experiments
table, and the README section written from a study's report."""

import pandas as pd
import pytest

from prunebench import paths
from prunebench.errors import ConfigError
from prunebench.report.paper import (
    README_BEGIN,
    README_END,
    experiments_table,
    load_published,
    paper_tables,
    update_readme,
)


def row(experiment, model, seed, met=True, **values):
    return {
        "experiment": experiment,
        "model": model,
        "seed": seed,
        "method": "aap",
        "policy": "aap_params",
        "target_met": met,
        "params_reduction": 90.0,
        "flops_reduction": 80.0,
        "test_drop": 1.0,
        "train_epochs_total": 40,
        **values,
    }


def test_every_experiment_is_one_row_its_models_side_by_side_over_the_seeds_that_met_the_target():
    runs = pd.DataFrame(
        [
            row("ilp", "lenet5", 0, method="ilp", policy="iterative", test_drop=3.0),
            row("ilp", "lenet5", 1, method="ilp", policy="iterative", test_drop=4.0),
            row("aap", "lenet5", 0, test_drop=1.0, train_epochs_total=30),
            row("aap", "lenet5", 1, met=False, test_drop=50.0, params_reduction=0.0, train_epochs_total=50),
            row("aap", "lenet300_100", 0, met=False),
            row("aap", "lenet300_100", 1, met=False),
        ]
    )
    study = {"experiments": {"aap": {}, "ilp": {}}}  # the study's order, not the alphabet's
    table = experiments_table(study, runs).set_index("experiment")
    assert list(table.index) == ["`aap`", "`ilp`"]
    aap = table.loc["`aap`"]
    assert aap["lenet5 params / FLOPs cut"] == "90.0 / 80.0 % (1 of 2 met the target)"
    assert aap["lenet5 test loss (points)"] == "1.00"  # the seed that missed is no result
    assert aap["lenet5 epochs"] == "40"  # but its compute counts
    assert aap["lenet300_100 params / FLOPs cut"] == "target missed (0 of 2)"
    assert table.loc["`ilp`", "lenet5 test loss (points)"] == "3.50 ± 0.71"
    assert table.loc["`ilp`", "lenet300_100 epochs"] == ""  # not run on that model


def write_report_files(results):
    report = paths.report_dir(str(results))
    (results / "report").mkdir(parents=True)
    assert str(results / "report") == report
    (results / "report/experiments.md").write_text("| experiment |\n|---|\n| `aap` |\n")
    (results / "report/claims.md").write_text("| claim | verdict |\n|---|---|\n| p = 1 is best | not run |\n")


def test_the_readme_section_between_the_markers_is_rewritten_from_the_report(tmp_path):
    write_report_files(tmp_path)
    begin = README_BEGIN.format(study="configs/default.yaml")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n## Results\n{begin}\nold numbers\n{README_END}\nWritten by hand.\n")
    update_readme(readme, "configs/default.yaml", tmp_path)
    text = readme.read_text()
    assert "old numbers" not in text and "| `aap` |" in text and "| p = 1 is best | not run |" in text
    assert text.startswith("# Title\n\n## Results\n" + begin) and text.endswith(f"{README_END}\nWritten by hand.\n")
    update_readme(readme, "configs/default.yaml", tmp_path)
    assert readme.read_text() == text  # written again: the same


def test_a_readme_without_the_markers_of_that_study_is_refused(tmp_path):
    write_report_files(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_BEGIN.format(study='configs/other.yaml')}\n{README_END}\n")
    with pytest.raises(ConfigError, match="needs one results section"):
        update_readme(readme, "configs/default.yaml", tmp_path)
    assert "configs/other.yaml" in readme.read_text()  # untouched


def test_a_published_row_sits_beside_the_seeds_that_met_the_target_only():
    study = {
        "seeds": [0, 1, 2],
        "models": ["lenet5"],
        "base": {"data": {"dataset": "mnist"}},
        "experiments": {"aap99": {"published": {"artifact": "table5", "method": "AAP", "target": "params 99%"}}},
    }

    def aap99(seed, cut, loss, met=True):
        shared = dict(dataset="mnist", target_metric="params", target=99.0, images_seen=1, train_wall_s=1.0)
        top1 = 99.0 - loss
        return row("aap99", "lenet5", seed, met, params_reduction=cut, val_top1=top1, test_top1=top1,
                   val_drop=loss, test_drop=loss, **shared)  # fmt: skip

    # Seed 2 missed the target: it kept the dense model (no cut, no loss), no result to average in.
    runs = pd.DataFrame([aap99(0, 99.0, 0.5), aap99(1, 99.4, 0.3), aap99(2, 0.0, 0.0, met=False)])
    dense = pd.DataFrame([{"dataset": "mnist", "model": "lenet5", "seed": 0, "test_top1": 99.0, "trained_by": None}])
    table = paper_tables(study, runs, dense, load_published())["table5"]
    aap = table[table.experiment == "aap99"].iloc[0]
    assert aap["Params. ↓ (%) ours"] == "99.20 ± 0.28" and aap["Acc. ↓ (%) ours"] == "0.40 ± 0.14"
    assert aap["target met"] == "2/3" and aap["status"] == "target missed in 1 of 3 seeds"
    runs["target_met"] = False
    aap = paper_tables(study, runs, dense, load_published())["table5"].query("experiment == 'aap99'").iloc[0]
    assert aap["Params. ↓ (%) ours"] == "-" and aap["Params. ↓ (%) Δ"] == "-" and aap["target met"] == "0/3"


def test_table_6s_two_models_of_one_target_are_reproduced_by_one_experiment_each():
    study = {
        "seeds": [0],
        "models": ["resnet56"],
        "base": {"data": {"dataset": "cifar10"}},
        "experiments": {
            f"flops{level}": {"published": {"artifact": "table6", "method": "AAP", "target": "acc 0%", "entry": entry}}
            for level, entry in ((34, 1), (56, 2))
        },
    }
    shared = dict(dataset="cifar10", target_metric="flops", images_seen=1, train_wall_s=1.0, val_top1=93.0,
                  test_top1=93.0, val_drop=0.0)  # fmt: skip
    runs = pd.DataFrame(
        [
            row("flops34", "resnet56", 0, target=33.77, flops_reduction=34.0, test_drop=-0.2, **shared),
            row("flops56", "resnet56", 0, target=56.33, flops_reduction=56.5, test_drop=0.1, **shared),
        ]
    )
    dense = pd.DataFrame(
        [{"dataset": "cifar10", "model": "resnet56", "seed": 0, "test_top1": 93.0, "trained_by": None}]
    )
    table = paper_tables(study, runs, dense, load_published())["table6"].set_index("experiment")
    assert table.loc["flops34", "target"] == "acc 0% (pruned model 1 of 2)"
    assert table.loc["flops34", "our target"] == "flops ≥ 33.77 %"  # not the paper's: said beside it
    assert (
        table.loc["flops34", "FLOPs ↓ (%) published"] == "33.77" and table.loc["flops34", "FLOPs ↓ (%) ours"] == "34.00"
    )
    assert (
        table.loc["flops56", "FLOPs ↓ (%) published"] == "56.33" and table.loc["flops56", "Acc. ↓ (%) ours"] == "0.10"
    )
    assert table.loc["flops56", "Speedup (x) published"] == "1.49"
    study["experiments"]["flops56"]["published"]["entry"] = 3
    with pytest.raises(ConfigError, match="entry must be 1 or 2"):
        paper_tables(study, runs, dense, load_published())
    # Figs. 6-8 give the dense model's throughput on a device, not its top-1.
    study["experiments"] = {"flops34": {"published": {"artifact": "fig7", "method": "dense", "target": ""}}}
    fig7 = paper_tables(study, runs, dense, load_published())["fig7"]
    assert "17.63" not in fig7.to_string()


@pytest.mark.parametrize("artifact", sorted(set(load_published().artifact) - {"fig7", "fig8", "fig9", "fig2b", "fig4"}))
def test_every_published_artifact_renders_the_papers_numbers_beside_a_reproduction(artifact):
    """fig2b, fig4, fig7-9 give only figure-text numbers (rounds, epochs, throughputs) no table shows."""
    published = load_published()
    mine = published[(published.artifact == artifact) & (published.method != "dense")]
    mine = mine[mine.source == mine.source.iloc[0]].iloc[0]  # the first row of the first source
    entry = pd.Series([mine.flag]).str.extract(r"pruned model (\d) of 2")[0].iloc[0]  # NaN: no pair
    selector = {"artifact": artifact, "method": mine.method, "target": mine.target, "model": mine.model}
    if isinstance(entry, str):
        selector["entry"] = entry
    study = {
        "seeds": [0, 1],
        "models": ["m"],
        "base": {"data": {"dataset": mine.dataset}},
        "experiments": {"e": {"published": selector}},
    }
    shared = dict(dataset=mine.dataset, target_metric="params", target=50.0, images_seen=1, train_wall_s=1.0,
                  val_top1=90.0, test_top1=90.0, val_drop=0.5, flops_reduction=40.0)  # fmt: skip
    runs = pd.DataFrame([row("e", "m", s, params_reduction=50.0 + s, test_drop=0.5, **shared) for s in (0, 1)])
    dense = pd.DataFrame([{"dataset": mine.dataset, "model": "m", "seed": 0, "test_top1": 91.0, "trained_by": None}])
    table = paper_tables(study, runs, dense, published)[artifact]
    ours = table[table.experiment == "e"].iloc[0]
    assert ours["status"] == "reproduced" and ours["target met"] == "2/2"
    published_columns = [c for c in table.columns if c.endswith(" published")]
    assert published_columns and any(ours[c] not in ("", "-") for c in published_columns)
    assert any(ours[c.replace(" published", " ours")] not in ("-", "not measured") for c in published_columns
               if c.replace(" published", " ours") in table.columns)  # fmt: skip


def test_section_4_4s_sum_and_max_losses_are_compared_as_their_difference_to_attention_means():
    methods = {"mean": "Attention Mean (p=1)", "sum": "Attention Sum (p=1)"}
    study = {
        "seeds": [0, 1],
        "models": ["vgg16"],
        "base": {"data": {"dataset": "cifar10"}},
        "experiments": {
            e: {"published": {"artifact": "sec4.4", "method": m, "target": "params 57.73%"}} for e, m in methods.items()
        },
    }
    shared = dict(dataset="cifar10", target=57.73, target_metric="params", images_seen=1, train_wall_s=1.0,
                  val_top1=93.0, test_top1=93.0, val_drop=0.0)  # fmt: skip
    runs = pd.DataFrame(
        [row("mean", "vgg16", s, test_drop=0.5 + s / 10, **shared) for s in (0, 1)]
        + [row("sum", "vgg16", s, test_drop=0.8 + s / 10, **shared) for s in (0, 1)]
    )
    dense = pd.DataFrame([{"dataset": "cifar10", "model": "vgg16", "seed": 0, "test_top1": 93.5, "trained_by": None}])
    table = paper_tables(study, runs, dense, load_published())["sec4.4"].set_index("experiment")
    relative = "Acc. ↓ minus Attention Mean's (%)"
    assert table.loc["sum", f"{relative} published"] == "0.25"
    assert table.loc["sum", f"{relative} ours"] == "+0.30" and table.loc["sum", f"{relative} Δ"] == "+0.05"
    assert table.loc["mean", "Acc. ↓ (%) published"] == "0.38" and table.loc["mean", "Acc. ↓ (%) ours"] == "0.55 ± 0.07"
    # Figure-text numbers with no column (Fig. 2a's gain range, target "") are no rows: the claims test them.
    study["experiments"] = {"mean": {"published": {"artifact": "fig2a", "method": "IAP", "target": "params 57.73%"}}}
    fig2a = paper_tables(study, runs, dense, load_published())["fig2a"]
    assert set(fig2a.target) == {"params 9.92%", "params 57.73%", "params 69.56%"}
    assert fig2a.set_index("experiment").loc["mean", "top-1 (%) ours"] == "93.00 ± 0.00"  # the figure's axis
