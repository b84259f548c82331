"""Model size, compute and CPU latency.

FLOPs follow the AAP paper: FLOPs = 2 x MACs of conv and linear layers (F = 2 h w N); batch norm,
pooling and additions are not counted. They are counted per layer from the layers' output shapes
(2*H_out*W_out*C_out*(C_in/groups)*k*k, 2*in*out), which also gives the per-layer counts of
AAP's layer-aware thresholds; the tests check the total against torch's ``FlopCounterMode`` and
fvcore on the zoo (torch's counter is not used here: it imports torch._dynamo, about 1 s of
every job). Params count every parameter (weights, biases, BN affine).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

# How latency is measured unless a config or the command line says otherwise (the one source of
# these defaults: run configs' `measure`, `prunebench latency` / `measure`, a study's `latency`).
LATENCY_WARMUP = 10
LATENCY_REPEATS = 50
LATENCY_THREADS = (1,)


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


def latency_ms(
    model: nn.Module, example: torch.Tensor, threads: int, warmup: int = LATENCY_WARMUP, repeats: int = LATENCY_REPEATS
) -> float:
    """Median wall time in milliseconds of one forward pass of a batch-1 input on the CPU."""
    return paired_latency_ms([model], example, threads, warmup, repeats, blocks=1)[0]


@torch.no_grad()
def paired_latency_ms(
    models: list[nn.Module],
    example: torch.Tensor,
    threads: int,
    warmup: int = LATENCY_WARMUP,
    repeats: int = LATENCY_REPEATS,
    blocks: int = 5,
) -> list[float]:
    """Median batch-1 CPU latency of each model, measured in ``blocks`` interleaved blocks so that
    a slow spell of the machine (other tenants, frequency changes) hits every model alike and
    their ratio stays fair."""
    per_block = max(1, repeats // blocks)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    x = example[:1].cpu()
    models = [m.eval().cpu() for m in models]
    times: list[list[float]] = [[] for _ in models]
    try:
        for m in models:
            for _ in range(warmup):
                m(x)
        for _ in range(blocks):
            for m, t in zip(models, times, strict=True):
                for _ in range(per_block):
                    start = time.perf_counter()
                    m(x)
                    t.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return [1000.0 * statistics.median(t) for t in times]
