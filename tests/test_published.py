"""The published numbers of the AAP paper (Zhao, Jain, Zhao; AISTATS 2023) as data, checked
against the paper's text (../shared/seeds/aap-paper.txt; skipped where that file is absent).

configs/paper/published.csv holds one row per number the paper publishes; configs/paper/table1.csv
holds Table 1 (implementation details) plus the settings the text gives next to it; how garbled
cells were read: configs/paper/published.md.

What is tested
  (a) columns and vocabularies (artifact, model, dataset, metric, target format, value a float,
      sources, unique keys);
  (b) every decimal number printed in each table / figure-text region of the paper is accounted
      for: for tables it is matched ONE-TO-ONE (as a multiset) with the CSV values of that
      artifact, so that deleting any row fails; for text regions every token must be a value
      (or target level) of the artifact's rows. Tokens that are not published numbers are listed
      in EXCLUDED / EXCLUDED_LEVELS / GLOBAL_EXCLUDED below, each with its reason;
  (c) every CSV value occurs, exactly as printed, as a number token of the paper (of its own
      region for the regions below), so no number is invented;
  (d) the known garbled target levels keep both readings (target + flag);
  (e) each table row of the CSV reproduces one extracted line of its table (values in the right
      columns, '-' where no row exists);
  (f) every decimal token of the whole paper (outside the reference list) is accounted for.

Regions are delimited by anchor strings of the extracted text (start inclusive, end exclusive),
see REGIONS. Only pandas and pytest are needed.
"""

import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO.parent / "shared" / "seeds" / "aap-paper.txt"
CSV = REPO / "configs" / "paper" / "published.csv"
TABLE1_CSV = CSV.with_name("table1.csv")

COLUMNS = ["artifact", "model", "dataset", "method", "target", "metric", "value", "source", "flag"]
ARTIFACTS = {
    "table2",
    "table3",
    "table4",
    "table5",
    "table6",
    "table7",
    "fig2a",
    "fig2b",
    "sec4.4",
    "fig4",
    "fig6",
    "fig7",
    "fig8",
    "fig9",
}
MODELS = {
    "resnet56",
    "resnet50_cifar",
    "vgg16",
    "vgg19",
    "mobilenetv2",
    "shufflenetv2",
    "lenet5",
    "lenet300_100",
    "resnet50",
    "resnet101",
}
DATASETS = {"cifar10", "imagenet", "tiny_imagenet", "mnist"}
METRICS = {
    "acc_drop",
    "params_reduction",
    "flops_reduction",
    "top1",  # tables
    "speedup",
    "fps",  # Table 6, Figs. 6-8
    "top1_gain_vs_ilp_min",
    "top1_gain_vs_ilp_max",  # Fig. 2a text
    "first_rollback_round",
    "termination_round",  # Fig. 2b text
    "acc_drop_minus_attention_mean",  # Sec. 4.4 attention-function ablation text
    "good_rewind_epoch_low",
    "good_rewind_epoch_high",  # Fig. 4 text
    "good_rewind_fraction_low",
    "good_rewind_fraction_high",
}
THIS = "Zhao et al. 2023 (this paper)"
TARGET_RE = re.compile(r"^(acc|params|flops) \d+(\.\d+)?%(; (acc|params|flops) \d+(\.\d+)?%)*$")

# (start anchor, end anchor); the region is text[start:end] of the whole extracted paper
REGIONS = {
    "table1": ("Table 1: Implementation details", "these thresholds are also fully"),
    "table2": ("Madal\tTonast", "loss (-0.6%), outperforming"),  # table body + caption (l.198-234)
    "table3": ("Table 3: Results from VGG", "significantly more parameters (6.45%"),
    "table4": ("Table 4: Results from ResNet-50", "Table 5: Results from"),  # caption starts mid-line 284
    "table5": ("Table 5: Results from", "4.4 Ablation Study"),
    "table6": ("Table 6: Inference speedup", "Table 7: Mult"),
    "table7": ("Table 7: Mult", "mize the accuracy loss under"),
    "fig2a": ("The effect of attention-based iterative pruning.", "The effect of attention mapping functions."),
    "sec4.4": ("The effect of attention mapping functions.", "The effect of adaptive pruning."),
    "fig2b": ("The effect of adaptive pruning.", "The effect of Layer-aware Threshold"),
    "fig2c": ("The effect of Layer-aware Threshold", "The effect of inputs for evaluating"),
    "fig4": ("A.2.1 The Effect of Rewinding Epoch", "A.2.2 The Effect of Attentions"),
    "fig6": ("A.2.3 Inference Speedup on CPU", "A.2.4 Inference Speedup on Raspberry Pi"),
    "fig7": ("ResNet-56 on CIFAR-10. Figure 7", "VGG-16 on CIFAR-10. Figure 8"),
    "fig8": ("VGG-16 on CIFAR-10. Figure 8", "A.2.5 Attention Distributions"),
    "fig9": ("A.2.5 Attention Distributions", None),  # to the end of the file
}
TABLES = ["table2", "table3", "table4", "table5", "table6", "table7"]
TEXT_REGIONS = ["fig2a", "sec4.4", "fig2b", "fig2c", "fig4", "fig6", "fig7", "fig8", "fig9"]

# decimal tokens of a region that are NOT published numbers of that artifact (multiset counts)
EXCLUDED = {
    # l.250: '1.00' in the Target column of the VCNNP row, OCR junk of the 'Acc.' label
    "table3": Counter({"1.00": 1}),
    # l.362: '1.07' is the OCR of VGG-16's target cell '1%' (the clean '1%' is on l.363)
    "table6": Counter({"1.07": 1}),
    # 'discussed in Section 3.1'
    "sec4.4": Counter({"3.1": 1}),
    # 88.23 restates Table 2 (ResNet-56 AAP-P, acc 1%)
    "fig2b": Counter({"88.23": 1}),
    # 85.99 restates Table 3 (VGG-19 AAP-P, acc 0%): Fig. 2c has no number of its own
    "fig2c": Counter({"85.99": 1}),
    # Figs. 7/8 describe the Table 6 models by their FLOPs reductions (paragraph + caption)
    "fig7": Counter({"33.77": 2, "56.33": 2}),
    "fig8": Counter({"59.51": 2, "73.89": 2}),
}
# integer "N%" tokens of a table region that are not the level of any row's target
EXCLUDED_LEVELS = {
    "table2": {33},  # l.228 '33%': OCR of the ResNet-56 FLOPs level read as 50% (alt readings in the flag)
    "table3": {83},  # l.268 '83%': alternative reading of the VGG-19 FLOPs level (85%), kept in the flag
    "table4": {20},  # l.301 '20%': OCR junk of the Tiny-ImageNet VGG-19 acc level (read 5%, alt 3%)
    "table6": {50},  # l.364 '50%': OCR of ResNet-50's target cell '5%' (clean '5%' on l.365)
}
# decimal tokens of the running text that are no published number, with the reason
GLOBAL_EXCLUDED = {
    # section numbers
    "3.1": "section",
    "3.2": "section",
    "3.3": "section",
    "4.1": "section",
    "4.2": "section",
    "4.3": "section",
    "4.4": "section",
    "4.5": "section",
    # differences between table numbers quoted in the text (derived, not published results)
    "22.81": "79.11-56.30",
    "66.07": "79.11-13.04",
    "14.13": "70.13-56.00",
    "26.53": "70.13-43.60",
    "6.45": "24.55-18.10",
    "29.61": "30.39-0.78",
    "0.82": "11.62-10.80",
    "17.2": "32.26-15.06",
    "0.08": "Table 4 claim, see the HRank flag",
    "2.98": "2.38-(-0.60)",
    "0.87": "1.17-0.30",
    "2.24": "2.54-0.30",
    "0.27": "61.17-60.90",
    "22.1": "61.17-39.07",
    "12.77": "58.99-46.22",
    "30.28": "58.99-28.71",
    "17.72": "92.72-75.00",
    "47.72": "92.72-45.00",
    "0.36": "0.35-(-0.01)",
    "0.21": "0.20-(-0.01)",
    # Sec. 4.1 restates Table 2 AAP rows: -0.6 (= -0.60), '0.6% or 1.06% higher accuracy' (= -0.60/-1.06),
    # '28.43% or 46.11% of the original parameters' (= 100-71.57, 100-53.89)
    "-0.6": "restates -0.60",
    "0.6": "restates -0.60",
    "1.06": "restates -1.06",
    "28.43": "100-71.57",
    "46.11": "100-53.89",
    # Sec. 2: 'ILP can prune ResNet-50 by at most 11.5% ...' restates Table 4 ILP 11.50
    "11.5": "restates 11.50",
    # Sec. 4.1 '(0.3%)' restates AAP 0.30 of Table 2
    "0.3": "restates 0.30",
    # l.362 Table 6: OCR of VGG-16's target cell '1%' (see EXCLUDED['table6'])
    "1.07": "OCR junk",
}
# OCR'd method names in the extracted tables -> name used in the CSV
OCR_METHODS = {"EagleEve": "EagleEye", "Hrank": "HRank"}

NUM_RE = re.compile(r"(?:(?<![\w.\-])-)?(?<![\d.])\d+\.\d+(?:E[-+]?\d+)?(?!\d|\.\d)")
INT_RE = re.compile(r"(?<![\d.])\d+(?![\d]|\.\d)")
PCT_RE = re.compile(r"(?<![\d.])(\d+)\s*\\?%")


@pytest.fixture(scope="module")
def text():
    if not PAPER.exists():
        pytest.skip(f"the paper's text is not at {PAPER} (the project's shared seeds)")
    return PAPER.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def df():
    return pd.read_csv(CSV, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def t1():
    return pd.read_csv(TABLE1_CSV, dtype=str, keep_default_na=False)


def region(text, name):
    start, end = REGIONS[name]
    assert text.count(start) == 1, f"anchor not unique/absent: {start!r}"
    i = text.index(start)
    j = len(text) if end is None else text.index(end, i)
    return text[i:j]


def decimals(s):
    return NUM_RE.findall(s)


def level_strings(target):
    return re.findall(r"(\d+(?:\.\d+)?)%", target)


def levels(target):
    return [float(x) for x in level_strings(target)]


# ----------------------------------------------------------------------------------------- (a)
def test_columns_and_vocabularies(df):
    assert list(df.columns) == COLUMNS
    assert set(df.artifact) <= ARTIFACTS, set(df.artifact) - ARTIFACTS
    assert set(df.artifact) == ARTIFACTS
    assert set(df.model) <= MODELS, set(df.model) - MODELS
    assert set(df.dataset) <= DATASETS, set(df.dataset) - DATASETS
    assert set(df.metric) <= METRICS, set(df.metric) - METRICS
    numeric = pd.read_csv(CSV)["value"]
    assert numeric.dtype == float and numeric.notna().all()
    for v in df.value:
        float(v)
    assert (df.method != "").all() and (df.source != "").all()


def test_targets_and_sources(df):
    for t in df.target:
        assert t == "" or TARGET_RE.match(t), t
    # dense baselines have no target and are top1 from the captions
    dense = df[df.method == "dense"]
    assert (dense.target == "").all() and set(dense.metric) <= {"top1", "fps"}
    own = df[
        df.method.str.startswith("AAP")
        | df.method.isin(["dense", "IAP", "ILP-Mean"])
        | df.method.str.startswith("Attention")
    ]
    assert (own.source == THIS).all()
    assert (df[df.artifact.str.startswith(("fig", "sec"))].source == THIS).all()
    quoted = df[(df.source != THIS)]
    # "Author(s) year (METHOD)" as the reference list gives it, or an explicit not-found note + flag
    for _, r in quoted.iterrows():
        if r.source.startswith("not in the paper's reference list"):
            assert "citation not found" in r.flag
        else:
            assert re.match(r"^[A-Z][\w-]+( et al\.| and [A-Z][\w-]+) \d{4}[ab]? \(.+\)$", r.source), r.source
    # acc_drop / reductions are table percentages; text-only rows say so
    assert df[df.artifact.str.startswith(("fig", "sec"))].flag.str.contains("from the text").all()


def test_keys_unique(df):
    pair = df.flag.str.extract(r"(pruned model \d of 2)")[0].fillna("")
    key = pd.concat([df[["artifact", "model", "dataset", "method", "target", "metric"]], pair], axis=1)
    dup = key[key.duplicated(keep=False)]
    assert dup.empty, dup


# ----------------------------------------------------------------------------------------- (b)
@pytest.mark.parametrize("name", TABLES)
def test_table_numbers_all_accounted_for(text, df, name):
    tokens = Counter(decimals(region(text, name))) - EXCLUDED.get(name, Counter())
    values = Counter(df[df.artifact == name].value)
    assert tokens - values == Counter(), f"printed in {name} but no row: {dict(tokens - values)}"
    assert values - tokens == Counter(), f"rows of {name} not printed there: {dict(values - tokens)}"
    assert sum(EXCLUDED.get(name, Counter()).values()) == sum(
        (Counter(decimals(region(text, name))) & EXCLUDED.get(name, Counter())).values()
    ), "stale EXCLUDED"


@pytest.mark.parametrize("name", TABLES)
def test_table_levels_accounted_for(text, df, name):
    # integer "N%" tokens (target-level cells, Table 7 constraints); "92.84%" is not one (lookbehind)
    printed = {int(x) for x in PCT_RE.findall(region(text, name))}
    sub = df[df.artifact == name]
    target_levels = {lv for t in sub.target for lv in levels(t)}
    unexplained = printed - target_levels - EXCLUDED_LEVELS.get(name, set())
    assert not unexplained, f"level tokens of {name} matching no target: {unexplained}"
    assert EXCLUDED_LEVELS.get(name, set()) <= printed, "stale EXCLUDED_LEVELS"


@pytest.mark.parametrize("name", TEXT_REGIONS)
def test_text_region_numbers_accounted_for(text, df, name):
    sub = df[df.artifact == name]
    ok = set(sub.value) | {lv for t in sub.target for lv in level_strings(t)}
    tokens = Counter(decimals(region(text, name))) - EXCLUDED.get(name, Counter())
    missing = {t for t in tokens if t not in ok}
    assert not missing, f"printed in {name} text but no row: {missing}"


def test_table1_numbers_accounted_for(text, t1):
    reg = region(text, "table1")
    tokens = Counter(decimals(reg))
    core = t1[t1.key.isin(["init_lr", "lr_decay_epochs", "epochs", "weight_decay"])]
    values = Counter(tok for v in core.value for tok in decimals(v))
    assert tokens == values, (dict(tokens - values), dict(values - tokens))
    # each Table 1 row is one extracted line: lr, decay epochs, epochs, weight decay in that order
    for (model, dataset), g in core.groupby(["model", "dataset"], sort=False):
        v = dict(zip(g.key, g.value, strict=True))
        line = "\t".join([v["init_lr"], v["lr_decay_epochs"], v["epochs"], v["weight_decay"]])
        assert line in reg, (model, dataset, line)
    assert len(core) == 12 * 4


# ----------------------------------------------------------------------------------------- (c)
def test_every_value_is_printed_in_the_paper(text, df, t1):
    printed = set(decimals(text)) | set(INT_RE.findall(text))
    bad = df[~df.value.isin(printed)]
    assert bad.empty, bad
    for v in t1.value:
        for tok in decimals(v):
            assert tok in printed, v
    # text-region rows: value printed in the region of their own artifact
    for name in TEXT_REGIONS:
        reg = region(text, name)
        here = set(decimals(reg)) | set(INT_RE.findall(reg))
        sub = df[df.artifact == name]
        assert sub.value.isin(here).all(), sub[~sub.value.isin(here)]


# ----------------------------------------------------------------------------------------- (d)
@pytest.mark.parametrize(
    "artifact,model,dataset,readings,n_rows",
    [
        ("table3", "vgg19", "cifar10", ("flops 85%", "flops 83%"), 4),  # l.267-268 '9501' / '83%'
        ("table4", "vgg19", "tiny_imagenet", ("acc 5%", "acc 3%"), 9),  # l.301-302 '20%' / '5%'
        ("table2", "resnet56", "cifar10", ("flops 50%", "flops 33%", "flops 55%"), 12),  # l.227-228
    ],
)
def test_garbled_levels_keep_both_readings(df, artifact, model, dataset, readings, n_rows):
    sub = df[(df.artifact == artifact) & (df.model == model) & (df.dataset == dataset) & df.target.isin(readings)]
    assert len(sub) == n_rows
    assert sub.target.nunique() == 1  # one row per number, the chosen reading in target ...
    for f in sub.flag:  # ... and every other reading named in the flag
        assert "ALT READING" in f
        for r in readings:
            assert r.split()[1] in f, (r, f)


# ----------------------------------------------------------------------------------------- (e)
def norm(cell):
    return cell.replace("$", "").replace("\\times", "").replace("×", "").strip()


@pytest.mark.parametrize("name", ["table2", "table3", "table4", "table5"])
def test_rows_reproduce_table_lines(text, df, name):
    lines = []
    for ln in region(text, name).split("\n"):
        cells = [norm(c) for c in ln.split("\t")]
        lines.append(cells)
    metrics = ["acc_drop", "params_reduction"] + ([] if name == "table5" else ["flops_reduction"])
    sub = df[(df.artifact == name) & (df.method != "dense")]
    for (model, target, method), g in sub.groupby(["model", "target", "method"], sort=False):
        v = dict(zip(g.metric, g.value, strict=True))
        want = [v.get(m, "-") for m in metrics]
        hits = [
            c
            for c in lines
            if len(c) > len(metrics)
            and OCR_METHODS.get(c[-len(metrics) - 1], c[-len(metrics) - 1]) == method
            and c[-len(metrics) :] == want
        ]
        assert hits, (name, model, target, method, want)


def test_table6_and_7_rows_reproduce_lines(text, df):
    reg6 = [[norm(c) for c in ln.split("\t")] for ln in region(text, "table6").split("\n")]
    sub = df[df.artifact == "table6"].copy()
    sub["pair"] = sub.flag.str.extract(r"(pruned model \d of 2)")[0]
    assert sub.pair.notna().all()
    for _, g in sub.groupby(["model", "pair"]):
        v = dict(zip(g.metric, g.value, strict=True))
        want = [v["acc_drop"], v["flops_reduction"], v["speedup"]]
        assert any(c[-3:] == want for c in reg6), want
    reg7 = region(text, "table7")
    for _, g in df[df.artifact == "table7"].groupby("target"):
        v = dict(zip(g.metric, g.value, strict=True))
        assert "\t".join([v["acc_drop"], v["params_reduction"], v["flops_reduction"]]) in reg7


# ----------------------------------------------------------------------------------------- (f)
def test_whole_paper_decimals_accounted_for(text, df, t1):
    body = text[: text.index("\nReferences\n")] + text[text.index("\nA Appendix\n") :]
    known = (
        set(df.value)
        | {tok for v in t1.value for tok in decimals(v)}
        | {lv for t in df.target for lv in level_strings(t)}
        | set(GLOBAL_EXCLUDED)
    )
    missing = sorted(set(decimals(body)) - known)
    assert not missing, f"decimal numbers of the paper in no CSV and not excluded: {missing}"
    stale = sorted(set(GLOBAL_EXCLUDED) - set(decimals(body)))
    assert not stale, stale


def test_row_counts(df):
    # pinned so that a deleted text-region row (whose value is printed several times) also fails
    counts = df.artifact.value_counts().to_dict()
    assert counts == {
        "table2": 76,
        "table3": 72,
        "table4": 65,
        "table5": 18,
        "table6": 18,
        "table7": 6,
        "fig2a": 11,
        "fig2b": 2,
        "sec4.4": 5,
        "fig4": 5,
        "fig6": 3,
        "fig7": 1,
        "fig8": 1,
        "fig9": 1,
    }, counts


# ----------------------------------------------------------------------------------------- Table 1
def test_the_table1_presets_are_the_papers_table1(t1):
    """train.preset (prunebench.config.run.TABLE1_PRESETS) says what Table 1 says."""
    from prunebench.config.run import TABLE1_PRESETS

    model_of = {"resnet50": "resnet50_cifar"}  # the preset's cifar10/resnet50 is AAP's CIFAR ResNet-50
    batch = dict(zip(t1[t1.key == "batch_size"].dataset, t1[t1.key == "batch_size"].value, strict=True))
    for key, preset in TABLE1_PRESETS.items():
        dataset, model = key.split("/")
        model = model_of.get(model, model) if dataset == "cifar10" else model
        rows = t1[(t1.model == model) & (t1.dataset == dataset)]
        v = dict(zip(rows.key, rows.value, strict=True))
        assert float(v["init_lr"]) == preset["lr"], key
        assert int(v["epochs"]) == preset["epochs"], key
        assert float(v["weight_decay"]) == preset["weight_decay"], key
        decay = [] if v["lr_decay_epochs"] == "N/A" else [int(e) for e in v["lr_decay_epochs"].strip("[]").split(",")]
        assert decay == preset["milestones"], key
        assert int(batch[dataset]) == preset["batch_size"], key
    assert len(TABLE1_PRESETS) == 12
