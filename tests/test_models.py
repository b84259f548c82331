"""The zoo's models are the ones the paper and the references define: params, MACs, shapes."""

from __future__ import annotations

import pytest
import torch
import torchvision

from prunebench import surgery
from prunebench.measure.cost import complexity, count_params
from prunebench.models import build_model

REFERENCES = [
    # Official AAP code (kaiqi123/Automatic-Attention-Pruning), pruning/mobilenetV2_cifar_mask.py:
    # build_mobilenetV2 asserts 2,237,770 trainable params (10 classes); GUIDE 10: ~297.5 M MACs.
    ("mobilenetv2", 32, 10, {}, 2_237_770, 297_521_664),
    # torchvision.models.mobilenet_v2: MobileNet_V2_Weights meta gives 3,504,872 params and
    # _ops 0.301 G (MACs); test_imagenet_mobilenetv2_is_torchvisions compares with torchvision.
    ("mobilenetv2", 224, 1000, {}, 3_504_872, 300_774_272),
    # Official AAP code, pruning/resnet_cifar_mask.py "resnet50Cifar": BasicBlock [3, 4, 6, 3],
    # widths 16-128, 1x1-conv shortcuts (GUIDE 10: about 1.33 M params, 72.8 M MACs). Exact
    # counts summed from its layer shapes: stem 464, stages 14,016 + 70,208 + 427,648 + 820,992,
    # fc 1,290.
    ("resnet50_cifar", 32, 10, {}, 464 + 14_016 + 70_208 + 427_648 + 820_992 + 1_290, 72_795_392),
    # Official AAP code, resnet56Cifar: its __main__ asserts 855,770 params (GUIDE 3: 125.75 M MACs).
    ("resnet56", 32, 10, {}, 855_770, 125_747_840),
]


@pytest.mark.parametrize("name,size,classes,options,params,macs", REFERENCES)
def test_reference_params_macs_and_output_shape(name, size, classes, options, params, macs):
    arch = surgery.dense_architecture(name, classes, 3, size, options)
    model = surgery.instantiate(arch).eval()
    cx = complexity(model, arch.example_input())
    assert (cx["params"], cx["macs"]) == (params, macs)
    assert model(arch.example_input(2)).shape == (2, classes)


def test_imagenet_mobilenetv2_is_torchvisions():
    ours = build_model("mobilenetv2", 1000, 3, 224)
    theirs = torchvision.models.mobilenet_v2()
    assert [p.shape for p in ours.state_dict().values()] == [p.shape for p in theirs.state_dict().values()]
    x = torch.zeros(1, 3, 224, 224)
    assert complexity(ours, x) == complexity(theirs, x)


def test_mobilenetv2_layout_follows_image_size_unless_set():
    # The layouts differ by the t=1 block's 32 -> 32 expansion conv (and its BN): 1,088 params.
    cifar, imagenet = 2_237_770, 2_237_770 - (32 * 32 + 2 * 32)
    assert count_params(build_model("mobilenetv2", 10, 3, 64)) == cifar
    assert count_params(build_model("mobilenetv2", 10, 3, 96)) == imagenet
    assert count_params(build_model("mobilenetv2", 10, 3, 32, {"small_input": False})) == imagenet
    assert count_params(build_model("mobilenetv2", 10, 3, 224, {"small_input": True})) == cifar
