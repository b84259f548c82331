"""Model size, compute and CPU latency.

FLOPs follow the AAP paper: FLOPs = 2 x MACs of conv and linear layers (F = 2 h w N); batch norm,
pooling and additions are not counted. They are counted per layer from the layers' output shapes
(2*H_out*W_out*C_out*(C_in/groups)*k*k, 2*in*out), which also gives the per-layer counts of
AAP's layer-aware thresholds; the tests check the total against torch's ``FlopCounterMode`` and
fvcore on the zoo (torch's counter is not used here: it imports torch._dynamo, about 1 s of
every job). Params count every parameter (weights, biases, BN affine). Latency and throughput are
timed by workflow/scripts/device_bench.py, the standalone benchmark devices run.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn


def _load_device_bench() -> ModuleType:
    """workflow/scripts/device_bench.py, the one timing protocol: the script that runs alone on a
    device (torch only) is also what times models here, so host and device numbers compare."""
    name = "prunebench_device_bench"
    if name in sys.modules:
        return sys.modules[name]
    if not DEVICE_BENCH.is_file():
        raise ImportError(f"{DEVICE_BENCH} is missing: install prunebench from its repository (pip install -e .)")
    spec = importlib.util.spec_from_file_location(name, DEVICE_BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


DEVICE_BENCH = Path(__file__).resolve().parents[2] / "workflow" / "scripts" / "device_bench.py"
device_bench = _load_device_bench()

# How latency is measured unless a config or the command line says otherwise (the one source of
# these defaults: run configs' `measure`, `prunebench latency` / `measure`, a study's `latency`).
# `repeats` is the passes timed per model: device_bench's trials x frames.
LATENCY_WARMUP = device_bench.WARMUP
LATENCY_REPEATS = device_bench.TRIALS * device_bench.FRAMES
LATENCY_THREADS = (1,)
# How the host runs each model (prunebench latency): the PyTorch module, and traced, frozen and
# optimised for inference as a device runs the exported file (device_bench's torchscript_frozen).
LATENCY_BACKENDS = ("eager", "torchscript_frozen")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def layer_flops(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Analytic FLOPs (2 x MACs) of every conv and linear layer, for one sample."""
    flops: dict[str, int] = {}

    def hook(name: str):
        def record(m: nn.Module, inp, out) -> None:
            # Summed over calls (a module applied twice counts twice, as torch's counter does).
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1]
                f = 2 * out.shape[2] * out.shape[3] * m.out_channels * (m.in_channels // m.groups) * k
            else:  # every position of the leading dimensions but the batch
                f = 2 * m.in_features * m.out_features * (out[0].numel() // m.out_features)
            flops[name] = flops.get(name, 0) + f

        return record

    hooks = [
        m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    model.eval()
    try:
        model(example[:1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return flops


def complexity(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    flops = sum(layer_flops(model, example).values())
    return {"params": count_params(model), "macs": flops // 2, "flops": flops}


def trials_and_frames(repeats: int) -> tuple[int, int]:
    """``repeats`` timed passes as device_bench's trials x frames (up to its 10 trials)."""
    trials = min(device_bench.TRIALS, repeats)
    return trials, max(1, repeats // trials)


@torch.no_grad()
def time_models(
    forwards: list[Callable[[], Any]], threads: int, warmup: int = LATENCY_WARMUP, repeats: int = LATENCY_REPEATS
) -> list[dict[str, float]]:
    """device_bench's timing of each forward (fps mean and std over trials, latency percentiles
    of batch-1 passes) at ``threads`` torch threads, the forwards interleaved trial by trial so
    that a slow spell of the machine hits every model alike and their ratio stays fair."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            return device_bench.time_forwards(forwards, warmup, *trials_and_frames(repeats))
    finally:
        torch.set_num_threads(previous)


def latency_ms(
    model: nn.Module, example: torch.Tensor, threads: int, warmup: int = LATENCY_WARMUP, repeats: int = LATENCY_REPEATS
) -> float:
    """Median wall time in milliseconds of one forward pass of a batch-1 input on the CPU."""
    model = model.eval().cpu()
    x = example[:1].cpu()
    return time_models([lambda: model(x)], threads, warmup, repeats)[0]["latency_ms"]
