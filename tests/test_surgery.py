"""Zero-then-prune equivalence for every zoo model, and the rebuild round trip.

For each prunable group, a random subset of channels is zeroed (filters, biases, BN shift and
running mean, so the channels carry exact zeros everywhere they flow), the model's output is
recorded, then the channels are physically removed: the outputs must match. A mis-grouped layer
(one coupled layer missed, or a wrong index mapping) breaks either the surgery or the match.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench import surgery
from prunebench.measure.cost import count_params
from prunebench.models import MODELS

SHAPES = {"lenet5": (1, 28), "lenet300_100": (1, 28), "resnet50": (3, 32), "resnet101": (3, 32)}
# Every registered model at its default for the shape above, plus layouts that only an option
# (or a large input) selects: MobileNetV2's ImageNet layout, here at 32x32 to stay fast.
VARIANTS = [(name, {}) for name in sorted(MODELS)] + [("mobilenetv2", {"small_input": False})]


def _arch(name: str, options: dict | None = None) -> surgery.Architecture:
    channels, size = SHAPES.get(name, (3, 32))
    return surgery.dense_architecture(name, 10, channels, size, options)


def _randomise_bn(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 1.5, generator=gen)
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(0, 0.1, generator=gen)


@torch.no_grad()
def _zero(group_items) -> None:
    for item in group_items:
        module, idxs = item.dep.target.module, list(item.idxs)
        if surgery._is_out_fn(item.dep.handler):
            module.weight[idxs] = 0
            if module.bias is not None:
                module.bias[idxs] = 0
        elif isinstance(module, nn.BatchNorm2d):
            module.bias[idxs] = 0
            module.running_mean[idxs] = 0


@pytest.mark.parametrize(
    "name,options", VARIANTS, ids=[n + "".join(f"-{k}={v}" for k, v in o.items()) for n, o in VARIANTS]
)
def test_zero_then_prune_equivalence(name: str, options: dict) -> None:
    gen = torch.Generator().manual_seed(0)
    arch = _arch(name, options)
    model = surgery.instantiate(arch).eval()
    _randomise_bn(model, gen)
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    assert groups, f"{name} has no prunable group"
    remove = {}
    for g in groups:
        k = int(torch.randint(1, max(2, g.size // 2 + 1), (1,), generator=gen))
        remove[g.name] = sorted(torch.randperm(g.size, generator=gen)[:k].tolist())
    x = torch.randn(2, arch.in_channels, arch.image_size, arch.image_size, generator=gen)

    original = model(x)
    dg = surgery.build_graph(model, arch.example_input())
    for g in surgery.channel_groups(model, dg):
        _zero(dg.get_pruning_group(g.root, g.root_fn, remove[g.name]))
    expected = model(x)
    assert not torch.allclose(original, expected), "zeroing must change the output, or the test proves nothing"

    params_before = count_params(model)
    new_arch = surgery.remove_channels(model, arch, remove)
    assert count_params(model) < params_before
    torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)

    # The record alone rebuilds the same architecture, and the weights load into it.
    rebuilt = surgery.instantiate(new_arch, model.state_dict()).eval()
    torch.testing.assert_close(rebuilt(x), expected, rtol=1e-4, atol=1e-4)
    for g in groups:
        assert len(new_arch.kept[g.name]) == g.size - len(remove[g.name])


def test_checkpoint_round_trip_loads_with_weights_only(tmp_path) -> None:
    arch = _arch("resnet20")
    model = surgery.instantiate(arch).eval()
    new_arch = surgery.remove_channels(model, arch, {"conv1": [0, 3], "layer2.0.conv1": [5]})
    path = tmp_path / "m.pt"
    surgery.save_checkpoint(str(path), new_arch, model, note="x")
    torch.load(path, weights_only=True)  # must not need weights_only=False
    arch2, model2, extra = surgery.load_checkpoint(str(path))
    assert arch2 == new_arch and extra == {"note": "x"}
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model2.eval()(x), model(x))


def test_remove_channels_keeps_original_ids_across_rounds() -> None:
    arch = _arch("lenet5")
    model = surgery.instantiate(arch)
    arch = surgery.remove_channels(model, arch, {"conv2": [0, 1, 2]})
    arch = surgery.remove_channels(model, arch, {"conv2": [0]})  # current 0 is original 3
    assert arch.kept["conv2"] == list(range(4, 50))


def test_a_group_is_never_emptied() -> None:
    arch = _arch("lenet5")
    model = surgery.instantiate(arch)
    with pytest.raises(ValueError, match="fewer than 1"):
        surgery.remove_channels(model, arch, {"conv1": list(range(20))})


def test_rewind_weights_takes_kept_channels_from_the_dense_state() -> None:
    arch = _arch("lenet5")
    dense = surgery.instantiate(arch)
    pruned = surgery.instantiate(arch)
    new_arch = surgery.remove_channels(pruned, arch, {"conv1": [1, 2]})
    rewound = surgery.rewind_weights(new_arch, dense.state_dict())
    keep = new_arch.kept["conv1"]
    torch.testing.assert_close(rewound.conv1.weight, dense.conv1.weight[keep])
    torch.testing.assert_close(rewound.conv2.weight, dense.conv2.weight[:, keep])
