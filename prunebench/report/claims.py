"""The AAP paper's claims, each measured on a study's tables: yes / no / undecided / not run, with
the numbers and seeds behind the verdict.

A comparison is paired by seed (every experiment of a (model, seed) prunes the same dense model)
over the seeds where both runs met their targets (a run that missed kept another size), on TEST
top-1: the claims are about test accuracy and nothing here chooses a result. Where a claim needs
a "best" setting (the best rewind epoch) the VALIDATION accuracy chooses it. A comparison says
``yes`` when the 95 % t-interval of the per-seed difference lies above 0 in the claimed
direction, ``no`` when it lies below, ``undecided`` when it spans 0 or there is one seed; a claim
is ``yes`` / ``no`` / ``undecided`` when all its comparisons are, ``mixed`` otherwise, and ``not
run`` when the study has no experiments that test it (the claim names what they would be); a
pair without a seed where both met their targets compares nothing and is only named.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from prunebench.report.tables import (
    PairedDifference,
    is_aap,
    paired_difference,
    per_seed,
    rewind_sweeps,
    same_size,
    speedup_pairs,
)

# AAP's scores as the paper evaluates them (Attention Mean, p = 1, training images): the variants
# are the ablation claims'.
DEFAULT_ATTENTION = {"function": "mean", "p": 1.0, "source": "train"}
# Methods that rank filters by the L1 norm of their weights (Renda et al.'s ILP and its variants).
L1_METHODS = ("ilp", "ilp_global", "ilp_mean", "l1")
# "Rewinding to 75 %-90 % of training time leads to good accuracy" (paper, Appendix A.2.1).
REWIND_BAND = (0.75, 0.90)
# comparisons: how many (or, for a Tally, the runs or models counted); seeds: the most any comparison had.
CLAIM_COLUMNS = ["claim", "paper", "verdict", "comparisons", "seeds", "evidence"]


@dataclass(frozen=True)
class Comparison:
    model: str
    better: str  # the experiment the paper says is better
    worse: str
    diff: PairedDifference  # better minus worse, test top-1 (points)
    detail: str = ""

    @property
    def verdict(self) -> str:
        d = self.diff
        if d.n < 2:
            return "undecided"
        return "yes" if d.low > 0 else "no" if d.high < 0 else "undecided"

    def __str__(self) -> str:
        d = self.diff
        interval = f" [{d.low:+.2f}, {d.high:+.2f}]" if d.n >= 2 else ""
        detail = f"; {self.detail}" if self.detail else ""
        head = f"{self.model} {self.better} − {self.worse}: {d.mean:+.2f}{interval} points top-1"
        return f"{head}, {d.n} seeds ({self.verdict}){detail}"


@dataclass(frozen=True)
class StudyTables:
    runs: pd.DataFrame  # runs.csv
    latency: pd.DataFrame | None = None  # latency.csv
    attention: pd.DataFrame | None = None  # attention.csv


@dataclass(frozen=True)
class Tally:
    """A claim measured by counting (targets met, faster models) rather than by comparisons."""

    verdict: str
    evidence: str
    count: int  # runs or models counted


@dataclass(frozen=True)
class Claim:
    name: str
    paper: str  # what the paper says, and where
    needs: str  # the experiments that would test it
    measure: Callable[[StudyTables], list[Comparison] | Tally]


def _experiments(runs: pd.DataFrame) -> pd.DataFrame:
    exps = runs.drop_duplicates(["dataset", "model", "experiment"]).copy()
    exps["options"] = [json.loads(o) for o in exps["method_options"]]
    return exps


def _compare(
    runs: pd.DataFrame, a: Any, b: Any, detail: Callable[[pd.DataFrame, pd.DataFrame], str] | None = None
) -> Comparison:
    met = runs[runs["target_met"].astype(bool)]
    ra = per_seed(met, a.dataset, a.model, a.experiment)
    rb = per_seed(met, b.dataset, b.model, b.experiment)
    diff = paired_difference(ra, rb, "test_top1")
    return Comparison(a.model, a.experiment, b.experiment, diff, detail(ra, rb) if detail else "")


def _sizes(a: pd.DataFrame, b: pd.DataFrame) -> str:
    return f"params ↓ {a.params_reduction.mean():.1f} vs {b.params_reduction.mean():.1f} %"


def _epochs(a: pd.DataFrame, b: pd.DataFrame) -> str:
    return f"{_sizes(a, b)}, epochs {a.train_epochs_total.mean():.0f} vs {b.train_epochs_total.mean():.0f}"


def _comparisons(
    runs: pd.DataFrame,
    better: Callable[[Any], bool],
    worse: Callable[[Any, Any], bool],
    detail: Callable[[pd.DataFrame, pd.DataFrame], str],
) -> list[Comparison]:
    """Every experiment a with ``better(a)`` against every other b of its (dataset, model) with
    ``worse(a, b)`` at an equal size (``tables.same_size``)."""
    out = []
    for _, group in _experiments(runs).groupby(["dataset", "model"], sort=True):
        for a in group.itertuples():
            if better(a):
                for b in group.itertuples():
                    if b.experiment != a.experiment and worse(a, b) and same_size(a, b):
                        out.append(_compare(runs, a, b, detail))
    return out


def attention_vs_l1(t: StudyTables) -> list[Comparison]:
    return _comparisons(
        t.runs,
        lambda a: a.method == "aap" and a.options == DEFAULT_ATTENTION,
        # The same policy and options (the scores are all that differ) or L1 channels in AAP's architecture.
        lambda a, b: (
            b.method in L1_METHODS
            and ((b.policy, b.policy_options) == (a.policy, a.policy_options) or b.policy == "matched")
        ),
        _sizes,
    )


def aap_vs_baselines(t: StudyTables) -> list[Comparison]:
    return _comparisons(
        t.runs,
        lambda a: is_aap(a.method, a.policy),
        # Other methods (AAP's own scores at a fixed rate are the next claim's).
        lambda a, b: b.method != "aap" and not str(b.policy).startswith("aap_"),
        _epochs,
    )


def adaptive_vs_fixed(t: StudyTables) -> list[Comparison]:
    return _comparisons(
        t.runs,
        lambda a: is_aap(a.method, a.policy),
        lambda a, b: b.method == "aap" and b.policy == "iterative" and b.options == a.options,
        _epochs,
    )


def _variant_order(
    runs: pd.DataFrame, key: str, order: list[Any], fixed: dict[str, Any], first_only: bool = False
) -> list[Comparison]:
    """AAP experiments differing only in method option ``key`` (the others as in ``fixed``), at
    an equal size under the same policy: each compared with every later one in ``order`` (the
    claimed ranking), or ``first_only``: the first with every other."""
    exps = _experiments(runs)
    exps = exps[exps["method"] == "aap"]
    out = []
    for _, group in exps.groupby(["dataset", "model", "policy"], sort=True):
        variants = [e for e in group.itertuples() if {k: e.options.get(k) for k in fixed} == fixed]
        for a in variants:
            for b in variants:
                oa, ob = a.options, b.options
                if oa[key] not in order or ob[key] not in order or not same_size(a, b):
                    continue
                if a.policy_options != b.policy_options:  # another rate or scope: not the option alone
                    continue
                i, j = order.index(oa[key]), order.index(ob[key])
                same_rest = {k: v for k, v in oa.items() if k != key} == {k: v for k, v in ob.items() if k != key}
                if same_rest and i < j and (i == 0 or not first_only):
                    out.append(_compare(runs, a, b, _sizes))
    return out


def mapping_functions(t: StudyTables) -> list[Comparison]:
    return _variant_order(t.runs, "function", ["mean", "max", "sum"], {"p": 1.0})


def exponent(t: StudyTables) -> list[Comparison]:
    return _variant_order(t.runs, "p", [1.0, 2.0, 4.0], {"function": "mean"}, first_only=True)


def rewinding(t: StudyTables) -> list[Comparison]:
    """Per rewind-epoch sweep (``tables.rewind_sweeps``): the best of its experiments rewinding
    into the band against the best of those outside it, best by mean validation top-1."""
    out = []
    for sweep in rewind_sweeps(t.runs):
        met = sweep[sweep.target_met.astype(bool)]
        val = met.groupby("experiment")["val_top1"].mean()
        group = _experiments(met)
        low, high = (f * float(sweep.train_epochs.iloc[0]) for f in REWIND_BAND)
        band = group.rewind_epoch.between(low, high)
        if band.all() or not band.any():
            continue
        best_in, best_out = (g.iloc[int(val[g.experiment].to_numpy().argmax())] for g in (group[band], group[~band]))
        by_epoch = met.groupby("rewind_epoch")["test_top1"].mean()
        detail = (
            f"rewind epoch {best_in.rewind_epoch} vs {best_out.rewind_epoch} of {best_in.train_epochs} (best by "
            "validation); test top-1 by rewind epoch " + ", ".join(f"{e}: {v:.2f}" for e, v in by_epoch.items())
        )
        out.append(_compare(t.runs, best_in, best_out, lambda a, b, detail=detail: detail))
    return out


def targets_met(t: StudyTables) -> Tally:
    runs = t.runs
    adaptive = runs[runs["policy"].astype(str).str.startswith("aap_")]
    if adaptive.empty:
        return Tally("not run", "", 0)
    met = adaptive.groupby(["dataset", "model", "experiment"])["target_met"].agg(["sum", "size"])
    missed = int((met["size"] - met["sum"]).sum())
    verdict = "yes" if missed == 0 else f"no ({missed} of {len(adaptive)} runs missed)"
    evidence = "; ".join(f"{m} {e}: {int(r['sum'])} of {int(r['size'])} runs" for (_, m, e), r in met.iterrows())
    return Tally(verdict, evidence, len(adaptive))


def speedups(t: StudyTables) -> Tally:
    latency = t.latency
    if latency is None or latency.empty:
        return Tally("not run", "", 0)
    pairs = speedup_pairs(latency)
    # A model that kept its FLOPs is no test of the claim.
    pairs = pairs[(pairs["method"] == "aap") & (pairs["flops_reduction"] > 1)]
    if pairs.empty:
        return Tally("not run", "no AAP model with a FLOPs cut was timed", 0)
    faster = int((pairs["speedup"] > 1).sum())
    verdict = "yes" if faster == len(pairs) else "no" if faster == 0 else f"mixed ({faster} of {len(pairs)} faster)"
    parts = [
        f"{model}, {backend}, {threads} thread(s): {g.speedup.min():.2f}-{g.speedup.max():.2f}x (FLOPs-ideal "
        f"{g.ideal_speedup.min():.2f}-{g.ideal_speedup.max():.2f}x, {len(g)} models)"
        for (model, backend, threads), g in pairs.groupby(["model", "backend", "threads"], sort=True)
    ]
    evidence = f"batch 1 on {latency['device'].iloc[0]} (the paper: Raspberry Pi 3B+); " + "; ".join(parts)
    return Tally(verdict, evidence, len(pairs))


# "The attention value of each filter is consistent across different batches" (Sec. 4.4): the
# least rank correlation, over layers, of a layer's per-filter attention between batches that
# counts as consistent. Fixed before any study ran; the evidence prints the correlations.
CONSISTENT_RANK_CORRELATION = 0.9


def input_insensitivity(t: StudyTables) -> Tally:
    """Per dense model (round 0, the smallest p; one run per (model, seed): the study's adaptive
    runs of one seed share it) and layer of at least 3 filters: the mean Spearman correlation of
    the filters' attention between pairs of training-image batches, and between the mean of those
    and each random-input batch. The claim holds where every one of them is at least
    ``CONSISTENT_RANK_CORRELATION``; a layer whose filters all score alike (dead or constant) has no
    ranking and is left out."""
    a = t.attention
    if a is None or a.empty:
        return Tally("not run", "", 0)
    p = a["p"].min()
    dense = a[(a["round"] == 0) & (a["p"] == p)]
    first = dense.groupby(["model", "seed"])["run_id"].min()
    dense = dense[dense["run_id"].isin(first)]
    real_all, random_all, parts = [], [], []
    for run_id, rows in dense.groupby("run_id", sort=True):
        real_r, random_r = [], []
        for _, g in rows.groupby("group", sort=False):
            wide = g.pivot_table(index="channel", columns=["source", "batch"], values="attention")
            sources = set(wide.columns.get_level_values(0))
            if len(wide) < 3 or "train" not in sources:
                continue
            real = wide["train"]
            if real.shape[1] > 1:
                corr = real.rank().corr().to_numpy()  # Spearman: Pearson of the ranks (no scipy)
                real_r.append(float(np.nanmean(corr[~np.eye(len(corr), dtype=bool)])))
            if "random" in sources:
                random_r.append(float(wide["random"].rank().corrwith(real.mean(axis=1).rank()).mean()))
        real_r, random_r = [r for r in real_r if r == r], [r for r in random_r if r == r]
        real_all += real_r
        random_all += random_r
        parts.append(
            f"{run_id}: real-real {min(real_r, default=float('nan')):.2f}, real-random "
            f"{min(random_r, default=float('nan')):.2f} (least over {len(real_r)} / {len(random_r)} layers)"
        )
    head = f"Spearman rank correlation of per-filter attention between batches, dense model, p = {p:g}: "
    if not real_all or not random_all:
        return Tally("not run", head + "; ".join(parts) + " (no layer with a ranking to compare)", 0)
    verdict = "yes" if min(real_all + random_all) >= CONSISTENT_RANK_CORRELATION else "no"
    return Tally(verdict, head + "; ".join(parts), len(first))


CLAIMS = [
    Claim(
        "attention beats L1",
        "activation attention finds unimportant filters better than the L1 norm of weights: IAP above ILP "
        "and ILP-Mean by 0.1-0.58 points at equal params cut (Sec. 4.4, Fig. 2a; Sec. 4.5)",
        "an `aap` experiment and an L1 one (ilp, ilp_global, ilp_mean, l1) under the same policy at the same "
        "target, or `matched` to it",
        attention_vs_l1,
    ),
    Claim(
        "AAP beats the baselines",
        "AAP outperforms the related works in all cases, at equal size (Sec. 4.3, Tables 2-5)",
        "an AAP experiment (aap under an aap_* policy) and baselines at its target or matched to it",
        aap_vs_baselines,
    ),
    Claim(
        "adaptive beats fixed-rate",
        "the adaptive policy finds small, accurate models with no per-round rate to tune (Sec. 3.2, 4.4)",
        "an AAP experiment and `aap` with policy iterative (IAP) at the same target",
        adaptive_vs_fixed,
    ),
    Claim(
        "mean > max > sum",
        "one-shot at 57.73 % params: Attention Mean's loss is 0.13 below Max's and 0.25 below Sum's (Sec. 4.4)",
        "`aap` experiments with two or more of function mean, max, sum (p = 1) under one policy at one target",
        mapping_functions,
    ),
    Claim(
        "p = 1 is best",
        "Attention Mean's loss is 0.38 with p = 1, 0.42 with p = 2, 0.47 with p = 4 (Sec. 4.4)",
        "`aap` experiments with function mean and p = 1 and 2 or 4 under one policy at one target",
        exponent,
    ),
    Claim(
        "rewind to 75-90 %",
        "rewinding to 75 %-90 % of training time leads to good accuracy (Appendix A.2.1, Fig. 4)",
        "experiments equal but for train.rewind_epoch, some inside 75-90 % of train.epochs and some outside",
        rewinding,
    ),
    Claim(
        "attention is input-insensitive",
        "the attention of each filter is consistent across batches of real images and of random vectors "
        f"(Sec. 4.4, Fig. 3); consistent here: rank correlation >= {CONSISTENT_RANK_CORRELATION} in every layer",
        "an attention table (`tables/attention.csv`: the workflow writes it for the adaptive runs' first seed)",
        input_insensitivity,
    ),
    Claim(
        "targets met automatically",
        "the adaptive policies meet accuracy, size and FLOPs objectives without user intervention (Sec. 3.2)",
        "experiments under an aap_* policy",
        targets_met,
    ),
    Claim(
        "real speedup",
        "the FLOPs cut translates into real inference speedup (Sec. 4.5, Table 6)",
        "latency measured (`latency: {enabled: true}`) for AAP runs with a FLOPs cut",
        speedups,
    ),
]


def _combined(comparisons: list[Comparison]) -> str:
    verdicts = [c.verdict for c in comparisons]
    if len(set(verdicts)) == 1:
        return verdicts[0]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in ("yes", "no", "undecided") if v in verdicts)
    return f"mixed ({counts})"


def claims_table(
    runs: pd.DataFrame, latency: pd.DataFrame | None = None, attention: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per claim of ``CLAIMS``: its verdict on this study's tables (runs.csv, and
    latency.csv and attention.csv where the study has them) and the evidence."""
    tables = StudyTables(runs, latency, attention)
    rows = []
    for claim in CLAIMS:
        result = claim.measure(tables)
        if isinstance(result, Tally):
            verdict, evidence, count, seeds = result.verdict, result.evidence, result.count, ""
        else:
            # A pair without a seed where both met their targets compares nothing (paired.csv leaves it out too).
            empty = [c for c in result if c.diff.n == 0]
            result = [c for c in result if c.diff.n]
            if result:
                verdict, evidence = _combined(result), "; ".join(map(str, result))
                count, seeds = len(result), max(c.diff.n for c in result)
            elif empty:  # the experiments ran, but their runs kept other sizes: nothing to compare
                verdict, evidence, count, seeds = "no result (targets missed)", "", 0, ""
            else:
                verdict, evidence, count, seeds = "not run", "", 0, ""
            if empty:
                names = ", ".join(f"{c.model} {c.better} vs {c.worse}" for c in empty)
                evidence += f"{'; ' if evidence else ''}no seed where both met their targets: {names}"
        if verdict == "not run":
            evidence = f"needs {claim.needs}" + (f" ({evidence})" if evidence else "")
        rows.append(dict(zip(CLAIM_COLUMNS, (claim.name, claim.paper, verdict, count, seeds, evidence), strict=True)))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)
