"""Training benchmarks.

``bench_epoch``: the engine's in-memory pipeline vs a plain torchvision loop. Both train the same
model (LeNet-5 by default) on the same dataset with the same batch size, optimizer and threads,
in one process. The plain loop is what most pruning code does: a torchvision dataset with
per-sample PIL transforms and a DataLoader.

``bench_compute``: how fast the machine trains each model, in achieved GFLOP/s beside the same
machine's measured matrix-multiply peak (so the number means something on any CPU or GPU), and
how long a training step of the model pruned to half its FLOPs takes relative to the dense one
(it should track FLOPs: 0.5). Training FLOPs per image are taken as 3 x the forward FLOPs (the
forward pass, and the backward pass's gradients with respect to inputs and weights).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from prunebench import surgery
from prunebench.config.run import Config, TrainConfig
from prunebench.data.datasets import dataset_info
from prunebench.data.loaders import make_loaders
from prunebench.measure.cost import complexity
from prunebench.score.filters import filter_l1
from prunebench.select.channels import resolve_rate
from prunebench.select.policies import RateSelection
from prunebench.train.loop import autocast, make_optimizer, seeded_generator


@dataclass
class BenchResult:
    engine_img_s: float
    plain_img_s: float

    @property
    def ratio(self) -> float:
        return self.engine_img_s / self.plain_img_s


def _fresh_model(cfg: Config) -> torch.nn.Module:
    info = dataset_info(cfg.data)
    torch.manual_seed(cfg.seed)
    return surgery.instantiate(
        surgery.dense_architecture(cfg.model.name, info.num_classes, info.in_channels, info.image_size)
    )


def bench_epoch(cfg: Config, max_batches: int | None = None) -> BenchResult:
    """Images per second of one training epoch (or its first ``max_batches``) both ways."""
    if cfg.data.dataset not in ("mnist", "fashion_mnist"):
        raise ValueError("the plain-loop baseline is written for mnist and fashion_mnist")
    device = torch.device("cpu")
    # Same model, memory layout, batch, optimizer and threads on both sides: only the data
    # pipeline differs.
    train_cfg = dataclasses.replace(cfg.train, channels_last=False)
    loaders = make_loaders(cfg.data, train_cfg, device)
    pad = loaders.train.crop_padding

    def run(batches) -> float:
        model = _fresh_model(cfg).train()
        opt = make_optimizer(model, cfg.train, cfg.train.lr)
        seen, start = 0, time.perf_counter()
        for i, (x, y) in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
        return seen / (time.perf_counter() - start)

    engine = run(loaders.train.epoch(seeded_generator(cfg.seed, "bench")))

    from torchvision import datasets, transforms  # the plain loop's own pipeline

    folder_cls = datasets.MNIST if cfg.data.dataset == "mnist" else datasets.FashionMNIST
    tfs = [transforms.RandomCrop(28, padding=pad)] if pad else []
    if loaders.train.hflip:
        tfs.append(transforms.RandomHorizontalFlip())
    tfs += [
        transforms.ToTensor(),
        transforms.Normalize(loaders.train.mean.flatten().tolist(), loaders.train.std.flatten().tolist()),
    ]
    plain_set = folder_cls(str(cfg.data.resolved_root()), train=True, download=False, transform=transforms.Compose(tfs))
    plain_set = torch.utils.data.Subset(plain_set, range(loaders.train.num_samples))
    loader = torch.utils.data.DataLoader(plain_set, batch_size=cfg.train.batch_size, shuffle=True, num_workers=0)
    plain = run(loader)
    return BenchResult(engine, plain)


# The models of the compute benchmark and the input each takes (channels, size).
COMPUTE_MODELS = {"lenet5": (1, 28), "resnet20": (3, 32), "vgg11": (3, 32)}


@dataclass
class ComputeResult:
    model: str
    forward_gflops: float  # per image
    img_s: float
    train_gflop_s: float  # 3 x forward FLOPs x images per second
    peak_gflop_s: float  # fp32 matrix multiply on the same machine and threads
    pruned_flops_ratio: float  # pruned / dense forward FLOPs (the target is 0.5)
    pruned_step_ratio: float  # pruned / dense training-step time

    @property
    def percent_of_peak(self) -> float:
        return 100.0 * self.train_gflop_s / self.peak_gflop_s


def matmul_peak_gflop_s(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` fp32 GFLOP/s of an n x n matrix product (2 n^3 FLOPs)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, precision: str) -> float:
    """Median seconds of one SGD training step on the batch (after one warm-up step)."""
    opt = make_optimizer(model, TrainConfig(), 0.01)
    model.train()
    times = []
    for i in range(steps + 1):
        _sync(x.device)
        start = time.perf_counter()
        with autocast(x, precision):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(x.device)
        if i:  # the first step allocates and picks kernels
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def bench_compute(
    name: str,
    device: torch.device,
    batch: int = 128,
    steps: int = 5,
    peak: float | None = None,
    precision: str = "fp32",
) -> ComputeResult:
    """Achieved training GFLOP/s of ``name`` on random inputs, and the step time of the model
    with 50 % of its FLOPs removed (layer-wise L1 channels, as ``ilp``) relative to the dense one."""
    channels, size = COMPUTE_MODELS[name]
    arch = surgery.dense_architecture(name, 10, channels, size)
    torch.manual_seed(0)
    model = surgery.instantiate(arch)
    example = arch.example_input()
    dense = complexity(model, example)
    groups = surgery.channel_groups(model, surgery.build_graph(model, example))
    scores = {g.name: filter_l1(model, g) for g in groups}
    remove = resolve_rate(
        RateSelection(1.0, "layerwise", ("flops", 50.0)), scores, model, arch, dense, 1, example.device
    )[1]
    pruned = surgery.instantiate(arch)
    pruned.load_state_dict(model.state_dict())
    surgery.remove_channels(pruned, arch, remove)
    pruned_flops = complexity(pruned, example)["flops"]
    x = torch.randn(batch, channels, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    timed = {}
    for label, m in (("dense", model), ("pruned", pruned)):
        timed[label] = _step_seconds(m.to(device).to(memory_format=torch.channels_last), x, y, steps, precision)
    img_s = batch / timed["dense"]
    peak = peak if peak is not None else matmul_peak_gflop_s(device)
    return ComputeResult(
        name,
        dense["flops"] / 1e9,
        img_s,
        3 * dense["flops"] * img_s / 1e9,
        peak,
        pruned_flops / dense["flops"],
        timed["pruned"] / timed["dense"],
    )
