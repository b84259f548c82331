"""Measured CPU speedup of L1-pruned architectures with and without latency-aware rounding
(``prune.round_to``), against the FLOPs-ideal ratio: the architecture alone sets the speed, so
untrained models at the same FLOPs target suffice (accuracy needs trained runs: a study experiment
with `prune: {round_to: 8}`).

    python workflow/scripts/round_to_speed.py --out results/round_to_speed.csv [--models vgg16 resnet56]

Each model is pruned once, layer-wise by filter L1 (the `l1` method's rule) to a FLOPs cut of at
least ``--target`` percent, rounding each group's kept channels to 1 (off) and to ``--round-to``;
dense and pruned models are timed by device_bench's protocol (interleaved, batch 1), eager and
TorchScript-frozen, at each thread count.
"""

from __future__ import annotations

import argparse
import copy

import pandas as pd
import torch

from prunebench import surgery
from prunebench.measure.cost import complexity, device_bench, time_models
from prunebench.measure.export import to_torchscript
from prunebench.score.filters import filter_l1
from prunebench.select.channels import resolve_rate
from prunebench.select.policies import RateSelection


def pruned(name: str, target: float, round_to: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    arch = surgery.dense_architecture(name, 10, 3, 32, None)
    dense = surgery.instantiate(arch).eval()
    model = copy.deepcopy(dense)
    x = arch.example_input()
    groups = surgery.channel_groups(model, surgery.build_graph(model, x))
    scores = {g.name: filter_l1(model, g) for g in groups}
    sizes = complexity(dense, x)
    sel = RateSelection(fraction=0.95, scope="layerwise", target=("flops", target))
    _, remove = resolve_rate(sel, scores, model, arch, sizes, 1, torch.device("cpu"), round_to)
    surgery.remove_channels(model, arch, remove, 1)
    return dense, model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet56"])
    parser.add_argument("--target", type=float, default=60.0, help="FLOPs cut, percent")
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=100, help="passes timed per model")
    args = parser.parse_args()
    x = torch.randn(1, 3, 32, 32)
    rows = []
    for name in args.models:
        for multiple in (1, args.round_to):
            dense, model = pruned(name, args.target, multiple)
            flops = (complexity(dense, x)["flops"], complexity(model, x)["flops"])
            for backend in ("eager", "torchscript_frozen"):
                pair = (
                    [dense, model]
                    if backend == "eager"
                    else [device_bench.frozen(to_torchscript(m, x)) for m in (dense, model)]
                )
                for n in args.threads:
                    d, p = time_models([lambda m=m: m(x) for m in pair], n, repeats=args.repeats)
                    rows.append(
                        {
                            "model": name, "round_to": multiple, "backend": backend, "threads": n,
                            "flops_reduction": 100 * (1 - flops[1] / flops[0]),
                            "ideal_speedup": flops[0] / flops[1], "speedup": p["fps_mean"] / d["fps_mean"],
                            "dense_fps": d["fps_mean"], "pruned_fps": p["fps_mean"], "cpu": device_bench.cpu_name(),
                        }
                    )  # fmt: skip
                    r = rows[-1]
                    print(
                        f"{name} round_to={multiple} {backend} {n}t: -{r['flops_reduction']:.1f}% FLOPs, "
                        f"{r['speedup']:.2f}x of ideal {r['ideal_speedup']:.2f}x",
                        flush=True,
                    )
    table = pd.DataFrame(rows).assign(efficiency=lambda t: t["speedup"] / t["ideal_speedup"])
    table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
