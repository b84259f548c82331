"""The ``prunebench`` command line."""

from __future__ import annotations

import argparse
import errno
import functools
import json
import sys
from pathlib import Path

import torch

from prunebench import paths
from prunebench.errors import PrunebenchError
from prunebench.measure.cost import LATENCY_BACKENDS, LATENCY_REPEATS, LATENCY_THREADS, LATENCY_WARMUP
from prunebench.measure.export import FORMATS as EXPORT_FORMATS


def _cmd_run(args: argparse.Namespace) -> None:
    from prunebench.config.run import load_config
    from prunebench.run.engine import run_experiment

    cfg = load_config(args.config, args.set)
    summary = run_experiment(
        cfg,
        Path(args.out),
        Path(args.dense) if args.dense else None,
        args.replace_stale,
        Path(args.reference) if args.reference else None,
        args.experiment,
        Path(args.shared_rounds) if args.shared_rounds else None,
    )
    d, f = summary["dense"], summary["final"]
    rounds, final_round = summary["rounds"], summary["final_round"]
    met = "met" if summary["target_met"] else "NOT met"
    print(f"{cfg.name}: {summary['stop_reason']} after {rounds} round(s), {summary['rollbacks']} rollback(s)")
    print(f"  result: round {final_round}, target {met}")
    print(
        f"  dense: val {d['val_top1']:.2f}%  test {d['test_top1']:.2f}%  params {d['params']:,}  FLOPs {d['flops']:,}"
    )
    print(
        f"  final: val {f['val_top1']:.2f}%  test {f['test_top1']:.2f}%"
        f"  params {f['params']:,} (-{f['params_reduction']:.2f}%)  FLOPs {f['flops']:,} (-{f['flops_reduction']:.2f}%)"
    )
    print(f"  results in {args.out}/ (rounds.csv, layers.csv, summary.json, final.pt)")


def _cmd_dense(args: argparse.Namespace) -> None:
    from prunebench.config.run import load_config
    from prunebench.run.engine import dense_only

    cfg = load_config(args.config, args.set)
    record = dense_only(cfg, Path(args.out), args.replace_stale, args.rewind_epochs)
    print(f"dense {cfg.model.name}: val {record['val_top1']:.2f}%  test {record['test_top1']:.2f}%  in {args.out}/")


def _cmd_data(args: argparse.Namespace) -> None:
    from prunebench.config.run import load_config
    from prunebench.data.loaders import prepare_data
    from prunebench.io import atomic_write_text

    cfg = load_config(args.config, args.set)
    record = prepare_data(cfg.data)
    if args.out:
        atomic_write_text(json.dumps(record, indent=2) + "\n", Path(args.out))
    print(
        f"{record['dataset']}: {record['train_images']:,} training and {record['test_images']:,} test images "
        f"ready under {cfg.data.resolved_root()}"
    )


def _cmd_tables(args: argparse.Namespace) -> None:
    from prunebench.report.tables import write_tables

    for path in write_tables([Path(d) for d in args.runs], Path(args.out)):
        print(path)


def _cmd_latency(args: argparse.Namespace) -> None:
    from prunebench.io import atomic_write_text
    from prunebench.report.tables import latency_table

    table = latency_table([Path(d) for d in args.runs], args.threads, args.warmup, args.repeats, args.backend)
    atomic_write_text(table.to_csv(index=False), Path(args.out))
    print(f"{len(table)} latency rows in {args.out}")


def _cmd_export(args: argparse.Namespace) -> None:
    from prunebench.measure.export import export_runs

    manifest = export_runs([Path(d) for d in args.runs], Path(args.out), args.rounds, args.format)
    entries = sum(len(m["entries"]) for m in manifest["models"])
    print(f"{len(manifest['models'])} models ({entries} run rounds) in {args.out}, formats {', '.join(args.format)}")


def _cmd_devices(args: argparse.Namespace) -> None:
    import pandas as pd

    from prunebench.io import atomic_write_text
    from prunebench.report.tables import devices_table

    host = pd.read_csv(args.host).assign(source="host") if args.host else None
    table = devices_table(host, [Path(c) for c in args.csvs], [Path(d) for d in args.runs])
    atomic_write_text(table.to_csv(index=False), Path(args.out))
    print(f"{len(table)} rows from {table['device'].nunique()} device(s) in {args.out}")


def _cmd_attention(args: argparse.Namespace) -> None:
    from prunebench.io import atomic_write_text
    from prunebench.measure.attention import attention_table, first_activation_maps

    table = attention_table(
        [Path(d) for d in args.runs],
        rounds=args.rounds,
        batches=args.batches,
        random=args.random,
        ps=tuple(args.p),
        function=args.function,
        overrides=args.set,
    )
    atomic_write_text(table.to_csv(index=False), Path(args.out))
    print(f"{len(table)} attention rows in {args.out}")
    if args.maps:
        maps = first_activation_maps([Path(d) for d in args.runs], overrides=args.set)
        atomic_write_text(maps.to_csv(index=False), Path(args.maps))
        print(f"{len(maps)} activation-map rows in {args.maps}")


def _cmd_figures(args: argparse.Namespace) -> None:
    from prunebench.report.figures import write_figures

    for path in write_figures(Path(args.tables), Path(args.out)):
        print(path)


def _cmd_report(args: argparse.Namespace) -> None:
    from prunebench.config.run import read_config
    from prunebench.config.study import check_study
    from prunebench.report.paper import update_readme, write_report

    study = read_config(args.study)
    check_study(study)
    results = Path(args.results or study["results"])
    print(write_report(study, results))
    if args.readme:
        update_readme(Path(args.readme), args.study, results)
        print(args.readme)


def _cmd_preflight(args: argparse.Namespace) -> int:
    from prunebench.config.run import config_from_dict, read_config
    from prunebench.config.study import check_study
    from prunebench.run.preflight import preflight, preview, report

    raw = read_config(args.config)
    if "experiments" in raw:  # a study: every AAP experiment x model, first seed
        check_study(raw)
        previews = preflight(raw)
    else:  # one run's config, scored on the dense model in --dense (the workflow's preflight jobs)
        dense = Path(args.dense) / paths.DENSE_MODEL if args.dense else None
        previews = [preview(config_from_dict(raw, args.set), dense)]
    text = report(previews, args.show)
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0 if all(p.ok for p in previews) else 1


def _cmd_methods(args: argparse.Namespace) -> None:
    import dataclasses

    from prunebench.score.contract import discover_methods
    from prunebench.select.policies import all_policies

    def options(cls: type) -> str:
        def default(f: dataclasses.Field) -> str:
            if f.default is not dataclasses.MISSING:
                return repr(f.default)
            if f.default_factory is not dataclasses.MISSING:
                return repr(f.default_factory())
            return "(required)"

        return ", ".join(f"{f.name}={default(f)}" for f in dataclasses.fields(cls.Options)) or "none"

    methods, policies = discover_methods(args.methods_path), all_policies()
    w = max(map(len, [*methods, *policies]))
    print("methods:")
    for name, cls in methods.items():
        scope = f", scope: {cls.scope}" if cls.scope else ""
        needs = f", needs: {', '.join(cls.needs)}" if cls.needs else ""
        print(f"  {name:<{w}} {cls.summary}  [default policy: {cls.default_policy}{scope}{needs}]")
        print(f"  {'':<{w}} method_options: {options(cls)}")
    print("policies:")
    for name, cls in policies.items():
        print(f"  {name:<{w}} {cls.summary}")
        print(f"  {'':<{w}} policy_options: {options(cls)}")


def _cmd_check_method(args: argparse.Namespace) -> None:
    import json

    from prunebench.score.check import CHECK_MODELS, check_method

    for line in check_method(args.name, json.loads(args.options), args.models or tuple(CHECK_MODELS)):
        print(line)
    print(f"{args.name}: keeps the method contract on these models")


def _cmd_models(args: argparse.Namespace) -> None:
    from prunebench.models import MODELS

    for name, entry in MODELS.items():
        print(f"  {name:<14} {entry.summary}")


def _cmd_measure(args: argparse.Namespace) -> None:
    from prunebench import surgery
    from prunebench.measure.cost import complexity, latency_ms

    arch, model, _ = surgery.load_checkpoint(args.checkpoint)
    dense_arch = surgery.Architecture(arch.model, arch.num_classes, arch.in_channels, arch.image_size, arch.options)
    dense = surgery.instantiate(dense_arch)
    x = arch.example_input()
    threads = args.threads or torch.get_num_threads()
    report = {}
    for name, m in (("dense", dense), ("checkpoint", model)):
        report[name] = complexity(m, x)
        for n in sorted({1, threads}):
            report[name][f"latency_ms_{n}t"] = latency_ms(m, x, n, args.warmup, args.repeats)
    groups = surgery.channel_groups(model, surgery.build_graph(model, x))
    dense_groups = {g.name: g.size for g in surgery.channel_groups(dense, surgery.build_graph(dense, x))}
    if args.json or args.out:
        from prunebench.io import atomic_write_text
        from prunebench.report.schema import environment_record

        report["channels"] = {g.name: [g.size, dense_groups[g.name]] for g in groups}
        report["environment"] = environment_record()
        text = json.dumps(report, indent=2) + "\n"
        if args.out:
            atomic_write_text(text, Path(args.out))
        else:
            print(text, end="")
        return
    print(
        f"{args.checkpoint}: {arch.model}, input {arch.in_channels}x{arch.image_size}x{arch.image_size}, batch 1, CPU"
    )
    print(f"{'':<22}{'dense':>16}{'checkpoint':>16}{'ratio':>10}")
    for key in report["dense"]:
        a, b = report["dense"][key], report["checkpoint"][key]
        fmt = "{:>16,.3f}" if "latency" in key else "{:>16,}"
        print(f"{key:<22}" + fmt.format(a) + fmt.format(b) + f"{a / b:>9.2f}x")
    print("channels per group (kept / dense):")
    for g in groups:
        print(f"  {g.name:<28} {g.size:>5} / {dense_groups[g.name]}")


def _cmd_bench(args: argparse.Namespace) -> None:
    from prunebench.config.run import load_config, resolve_device
    from prunebench.measure.bench import bench_epoch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    if args.compute:
        _bench_compute(args, resolve_device(args.device))
        return
    cfg = load_config(args.config, args.set)
    result = bench_epoch(cfg, args.max_batches)
    threads = torch.get_num_threads()
    print(
        f"{cfg.model.name} on {cfg.data.dataset}, batch {cfg.train.batch_size}, {threads} threads, one training epoch"
    )
    print(f"  engine pipeline (in-memory tensors, batch augmentation): {result.engine_img_s:10,.0f} img/s")
    print(f"  plain loop (torchvision dataset + DataLoader):         {result.plain_img_s:10,.0f} img/s")
    print(f"  ratio: {result.ratio:.2f}x")


def _bench_compute(args: argparse.Namespace, device: torch.device) -> None:
    from prunebench.measure.bench import bench_compute, matmul_peak_gflop_s

    peak = matmul_peak_gflop_s(device)
    threads = torch.get_num_threads()
    where = f"{device.type}, {threads} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(
        f"training step, batch {args.batch}, {args.precision}, channels-last, {where}; "
        f"fp32 matrix multiply {peak:,.1f} GFLOP/s"
    )
    header = ("model", "fwd GFLOPs", "img/s", "GFLOP/s", "of peak", "pruned FLOPs", "pruned time")
    widths = (10, 11, 9, 9, 9, 14, 13)
    print("".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    for name in args.models:
        r = bench_compute(name, device, args.batch, args.steps, peak, args.precision)
        print(
            f"{r.model:<10}{r.forward_gflops:>11.4f}{r.img_s:>9,.0f}{r.train_gflop_s:>9,.1f}{r.percent_of_peak:>8.1f}%"
            f"{r.pruned_flops_ratio:>14.2f}{r.pruned_step_ratio:>13.2f}"
        )
    print("pruned: 50 % of the FLOPs removed (layer-wise L1); its FLOPs and step time relative to the dense model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunebench", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    # --debug after the command too; SUPPRESS keeps the top-level value when it is not given there.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser = functools.partial(sub.add_parser, parents=[common])

    run = sub.add_parser("run", help="run (or resume) one pruning experiment")
    run.add_argument("config", help="YAML config file, or - to read it from standard input")
    run.add_argument("--out", required=True, help="output directory of the run")
    run.add_argument("--dense", help="directory of a shared dense model (trained there if missing)")
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=5"
    )
    run.add_argument(
        "--replace-stale", action="store_true", help="discard saved rounds or dense model of another config"
    )
    run.add_argument("--reference", help="policy matched: the final.pt of the run whose channels per group are kept")
    run.add_argument("--experiment", help="the experiment's name in the tables (default: the --out directory's name)")
    run.add_argument(
        "--shared-rounds",
        metavar="DIR",
        help="reuse rounds other runs trained from identical inputs, and record this run's there (a study's "
        "shared_rounds/)",
    )
    run.set_defaults(func=_cmd_run)

    dense = sub.add_parser("dense", help="train (or reuse) only the dense model of a config")
    dense.add_argument("config", help="YAML config file, or - to read it from standard input")
    dense.add_argument("--out", required=True, help="dense model directory")
    dense.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    dense.add_argument("--replace-stale", action="store_true", help="discard a dense model of another config")
    dense.add_argument(
        "--rewind-epochs",
        type=int,
        nargs="*",
        metavar="K",
        help="epochs to keep a rewind snapshot after, none if empty (default: the config's train.rewind_epoch "
        "with rewind: weights)",
    )
    dense.set_defaults(func=_cmd_dense)

    data = sub.add_parser("data", help="download or stage a config's dataset and build its cache")
    data.add_argument("config", help="YAML config file, or - to read it from standard input")
    data.add_argument("--out", help="write a JSON description of the prepared dataset here")
    data.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    data.set_defaults(func=_cmd_data)

    tables = sub.add_parser(
        "tables", help="aggregate run directories into tidy tables, AAP vs baselines paired over seeds"
    )
    tables.add_argument("runs", nargs="+", help="run directories (each with rounds.csv and summary.json)")
    tables.add_argument(
        "--out",
        required=True,
        help="directory for rounds.csv, layers.csv, runs.csv, dense.csv, summary.csv, paired.csv, comparison.csv",
    )
    tables.set_defaults(func=_cmd_tables)

    latency = sub.add_parser("latency", help="CPU latency of runs' final and dense models into one CSV")
    latency.add_argument("runs", nargs="+", help="run directories (each with rounds.csv and final.pt)")
    latency.add_argument("--out", required=True, help="CSV file")
    latency.add_argument(
        "--threads", type=int, nargs="+", default=list(LATENCY_THREADS), help="thread counts to measure at"
    )
    latency.add_argument("--warmup", type=int, default=LATENCY_WARMUP)
    latency.add_argument(
        "--repeats", type=int, default=LATENCY_REPEATS, help="passes timed per model (trials x frames)"
    )
    latency.add_argument(
        "--backend", nargs="+", choices=LATENCY_BACKENDS, default=list(LATENCY_BACKENDS), help="how models run"
    )
    latency.set_defaults(func=_cmd_latency)

    export = sub.add_parser(
        "export", help="TorchScript / ONNX files of runs' dense models and chosen rounds, with manifest.json"
    )
    export.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories")
    export.add_argument("--out", required=True, help="directory for the files and manifest.json")
    export.add_argument(
        "--rounds", nargs="+", default=["final"], help="'final', 'all' or round numbers (the dense model: always)"
    )
    export.add_argument("--format", nargs="+", choices=EXPORT_FORMATS, default=["torchscript"])
    export.set_defaults(func=_cmd_export)

    devices = sub.add_parser("devices", help="the host's latency.csv and device_bench.py CSVs into one table")
    devices.add_argument(
        "csvs", nargs="*", metavar="DEVICE_CSV", help="CSVs written by workflow/scripts/device_bench.py"
    )
    devices.add_argument("--host", help="the study's latency.csv (this machine's rows)")
    devices.add_argument("--runs", nargs="+", required=True, help="the study's run directories (checked against)")
    devices.add_argument("--out", required=True, help="CSV file")
    devices.set_defaults(func=_cmd_devices)

    attention = sub.add_parser(
        "attention", help="per-filter attention of runs' models over several real and random batches (Figs. 3, 5, 9)"
    )
    attention.add_argument("runs", nargs="+", help="run directories (each with state/round_NNN.pt)")
    attention.add_argument("--out", required=True, help="CSV file")
    attention.add_argument(
        "--rounds", type=int, nargs="+", help="rounds to score (default: 0, the dense model, and the result)"
    )
    attention.add_argument("--batches", type=int, default=4, help="batches of training images")
    attention.add_argument("--random", type=int, default=4, help="batches of standard-normal inputs")
    attention.add_argument("--p", type=float, nargs="+", default=[1.0, 2.0, 4.0], help="exponents p of |a|^p")
    attention.add_argument("--function", default="mean", choices=["mean", "max", "sum"])
    attention.add_argument(
        "--maps",
        help="also this CSV: one layer's activation maps of the first run's dense model for one image (Fig. 1a)",
    )
    attention.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. data.mirror=DIR")
    attention.set_defaults(func=_cmd_attention)

    figures = sub.add_parser("figures", help="draw a study's figures (PDF and PNG) from its tables")
    figures.add_argument("tables", help="directory with rounds.csv, runs.csv, layers.csv (and latency.csv)")
    figures.add_argument("--out", required=True, help="directory for the figures")
    figures.set_defaults(func=_cmd_figures)

    report = sub.add_parser(
        "report", help="a study's paper tables (Markdown, LaTeX) and REPORT.md: published numbers beside ours"
    )
    report.add_argument("study", help="the study config (its experiments' published: keys name the rows)")
    report.add_argument("--results", help="the study's results directory (default: its results key)")
    report.add_argument(
        "--readme", help="also write the study's experiments and claims into this README, between its results markers"
    )
    report.set_defaults(func=_cmd_report)

    pre = sub.add_parser(
        "preflight", help="check that a study's AAP thresholds reach the dense models' scores within the budget"
    )
    pre.add_argument("config", help="a study config, or one AAP run's config; - reads standard input")
    pre.add_argument("--dense", help="a run config's dense model directory (else an initialised model is scored)")
    pre.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a run config key")
    pre.add_argument("--show", type=int, default=8, help="rounds to show per experiment")
    pre.add_argument("--out", help="also write the report to this file")
    pre.set_defaults(func=_cmd_preflight)

    methods = sub.add_parser("methods", help="list the discovered pruning methods and policies")
    methods.add_argument("--methods-path", action="append", default=[], help="extra directory of method files")
    methods.set_defaults(func=_cmd_methods)

    check = sub.add_parser(
        "check-method", help="check that a method keeps the plugin contract, on one model of every zoo family"
    )
    check.add_argument("name", help="the method's name (PRUNEBENCH_METHODS_PATH finds your files)")
    check.add_argument("--options", default="{}", metavar="JSON", help="its method_options, e.g. '{\"p\": 2}'")
    check.add_argument("--models", nargs="+", metavar="MODEL", help="zoo models to check on (default: one per family)")
    check.set_defaults(func=_cmd_check_method)

    models = sub.add_parser("models", help="list the model zoo")
    models.set_defaults(func=_cmd_models)

    measure = sub.add_parser("measure", help="params, MACs, FLOPs and CPU latency of a checkpoint vs its dense model")
    measure.add_argument("checkpoint")
    measure.add_argument("--threads", type=int, help="the multi-thread measurement's threads (default: all)")
    measure.add_argument("--warmup", type=int, default=LATENCY_WARMUP)
    measure.add_argument("--repeats", type=int, default=LATENCY_REPEATS)
    measure.add_argument("--json", action="store_true", help="print JSON")
    measure.add_argument("--out", help="write the JSON report to this file instead")
    measure.set_defaults(func=_cmd_measure)

    bench = sub.add_parser("bench", help="time one training epoch: engine pipeline vs a plain DataLoader loop")
    bench.add_argument(
        "config",
        nargs="?",
        default=str(Path(__file__).resolve().parents[1] / "configs/examples/lenet5_fashion_mnist.yaml"),
    )
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    bench.add_argument("--threads", type=int)
    bench.add_argument("--max-batches", type=int, help="time only the first N batches")
    bench.add_argument(
        "--compute",
        action="store_true",
        help="instead: achieved training GFLOP/s per model vs the matrix-multiply peak, and a 50 %% FLOPs-pruned "
        "model's step time relative to the dense one (random inputs, no data needed)",
    )
    bench.add_argument("--models", nargs="+", default=["lenet5", "resnet20", "vgg11"], help="--compute: the models")
    bench.add_argument("--batch", type=int, default=128, help="--compute: batch size")
    bench.add_argument("--steps", type=int, default=5, help="--compute: timed steps per model (median)")
    bench.add_argument("--device", default="auto", help="--compute: auto, cpu or cuda")
    bench.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="--compute: as train.precision")
    bench.set_defaults(func=_cmd_bench)
    return parser


def _os_error(e: OSError) -> str:
    """What an operating-system error while reading or writing means for the user."""
    where = e.filename or "a file"
    if e.errno == errno.ENOSPC:
        return f"no space left on the device writing {where}; free some and run the same command again (it resumes)"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where} ({e.strerror}); choose a directory you can write (--out)"
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"cannot create {where}: a part of the path is a file, not a directory; choose another path"
    return f"{e.strerror or e} ({where})"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("prunebench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        if isinstance(e, PrunebenchError):
            print(f"prunebench: error: {e}", file=sys.stderr)
        elif isinstance(e, OSError):
            print(f"prunebench: error: {_os_error(e)}", file=sys.stderr)
        else:
            print(
                f"prunebench: internal error: {type(e).__name__}: {e}\n"
                "  This is a bug, or an input prunebench does not check yet: rerun with --debug for the "
                "traceback and report it with the command.",
                file=sys.stderr,
            )
            return 1
        return 2


if __name__ == "__main__":
    sys.exit(main())
