import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunebench import surgery
from prunebench.measure.cost import complexity, latency_ms, layer_flops


@torch.no_grad()
def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """torch's own count of one forward pass (every op it knows), the independent check."""
    counter = FlopCounterMode(display=False)
    with counter:
        model.eval()(example[:1])
    return int(counter.get_total_flops())


def _analytic(model: nn.Module, size: int, channels: int) -> int:
    """2*H_out*W_out*C_out*(C_in/groups)*k^2 per conv, 2*in*out per linear, from shapes."""
    total = 0
    x = torch.zeros(1, channels, size, size)
    shapes = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, o.shape)) for n, m in model.named_modules()
    ]
    model.eval()(x)
    for h in hooks:
        h.remove()
    for n, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            _, c, h, w = shapes[n]
            total += 2 * h * w * c * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += 2 * m.in_features * m.out_features
    return total


# One model per family of the zoo (the others are deeper copies of the same blocks).
FAMILIES = ["lenet5", "lenet300_100", "resnet20", "resnet50_cifar", "resnet50", "vgg11", "mobilenetv2", "shufflenetv2"]


@pytest.mark.parametrize("name", FAMILIES)
def test_flop_counter_matches_the_analytic_formula(name):
    channels, size = (1, 28) if name.startswith("lenet") else (3, 32)
    arch = surgery.dense_architecture(name, 10, channels, size)
    model = surgery.instantiate(arch)
    expected = _analytic(model, size, channels)
    assert count_flops(model, arch.example_input()) == expected
    assert sum(layer_flops(model, arch.example_input()).values()) == expected
    assert complexity(model, arch.example_input())["flops"] == expected  # what the engine records


def test_resnet56_and_lenet5_reference_counts():
    arch = surgery.dense_architecture("resnet56", 10, 3, 32)
    cx = complexity(surgery.instantiate(arch), arch.example_input())
    assert cx["macs"] == 125_747_200 + 64 * 10 and cx["flops"] == 2 * cx["macs"]  # convs + fc: 125.75 M MACs (GUIDE)
    assert cx["params"] == 855_770
    lenet = complexity(surgery.instantiate(surgery.dense_architecture("lenet5", 10, 1, 28)), torch.zeros(1, 1, 28, 28))
    assert lenet["params"] == 431_080
    assert lenet["flops"] == 2 * (24 * 24 * 20 * 25 + 8 * 8 * 50 * 20 * 25 + 800 * 500 + 500 * 10)


def test_pruned_models_count_less():
    arch = surgery.dense_architecture("resnet20", 10, 3, 32)
    model = surgery.instantiate(arch)
    before = complexity(model, arch.example_input())
    surgery.remove_channels(model, arch, {"layer1.0.conv1": list(range(8))})
    after = complexity(model, arch.example_input())
    # layer1.0.conv1 loses 8 of 16 filters: its own and layer1.0.conv2's input weights halve.
    assert before["params"] - after["params"] == 8 * 16 * 9 + 2 * 8 + 16 * 8 * 9
    assert after["flops"] < before["flops"]
    assert after["flops"] == count_flops(model, arch.example_input())  # pruned layers are counted the same


def test_latency_is_a_positive_median():
    arch = surgery.dense_architecture("lenet5", 10, 1, 28)
    assert latency_ms(surgery.instantiate(arch), arch.example_input(), threads=1, warmup=1, repeats=3) > 0


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2"])
def test_fvcore_agrees_once_its_conventions_are_aligned(name):
    """fvcore counts one flop per MAC and adds batch norm and pooling: with those counted as 0
    (handles returning 0, not None), its count is our MACs."""
    from fvcore.nn import FlopCountAnalysis

    arch = surgery.dense_architecture(name, 10, 3, 32)
    model = surgery.instantiate(arch).eval()
    zero = lambda *_: 0  # noqa: E731
    analysis = FlopCountAnalysis(model, arch.example_input())
    analysis.set_op_handle("aten::batch_norm", zero, "aten::adaptive_avg_pool2d", zero)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert analysis.total() == complexity(model, arch.example_input())["macs"]


def test_a_layer_applied_twice_and_a_linear_over_positions_count_as_torch_counts_them():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 3, 3, padding=1), nn.Linear(8, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(self.conv(x)))  # the linear maps each of 3 x 8 rows

    model, x = Twice(), torch.zeros(1, 3, 8, 8)
    assert sum(layer_flops(model, x).values()) == count_flops(model, x) == 2 * (2 * 64 * 3 * 3 * 9 + 24 * 8 * 5)


def test_the_compute_benchmark_reports_gflops_against_the_machine_peak_and_a_half_flops_model():
    from prunebench.measure.bench import bench_compute

    r = bench_compute("lenet5", torch.device("cpu"), batch=8, steps=1, peak=100.0)
    assert r.forward_gflops == pytest.approx(2 * 2_293_000 / 1e9, rel=0.01)  # LeNet-5's 2.29 M MACs
    assert r.img_s > 0 and r.train_gflop_s == pytest.approx(3 * r.forward_gflops * r.img_s)
    assert r.percent_of_peak == pytest.approx(r.train_gflop_s)  # of a 100 GFLOP/s peak
    assert 0.45 <= r.pruned_flops_ratio <= 0.5 and r.pruned_step_ratio > 0
