import logging

import pytest
import torch
from torch import nn

from prunebench import surgery
from prunebench.measure.attention import layer_maps
from prunebench.score.activations import attention_points
from prunebench.score.contract import ScoringContext, make_method


class OneByOne(nn.Module):
    """A 1x1 conv with hand-set filters, so each channel's post-ReLU map is known exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 1, bias=False)
        self.act = nn.ReLU()
        self.fc = nn.Linear(3 * 2 * 2, 2)
        self.unprunable = ("fc",)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 2.0, -1.0]).view(3, 1, 1, 1))

    def forward(self, x):
        return self.fc(torch.flatten(self.act(self.conv(x)), 1))


def _scores(model, x, **options):
    groups = surgery.channel_groups(model, surgery.build_graph(model, x[:1]))
    method = make_method("aap", options)
    return method.score(ScoringContext(model, groups, x, torch.Generator().manual_seed(0), 1))["conv"]


X = torch.tensor([[[[1.0, 2.0], [3.0, -4.0]]], [[[0.0, 1.0], [1.0, 2.0]]]])  # two images


@pytest.mark.parametrize(
    "function,p,expected",
    [
        # per image: relu(w*x), then F over HxW; the score is the mean over the two images
        ("mean", 1, [(6 / 4 + 4 / 4) / 2, (12 / 4 + 8 / 4) / 2, (4 / 4 + 0) / 2]),
        ("max", 1, [(3 + 2) / 2, (6 + 4) / 2, (4 + 0) / 2]),
        ("sum", 1, [(6 + 4) / 2, (12 + 8) / 2, (4 + 0) / 2]),
        ("mean", 2, [(14 / 4 + 6 / 4) / 2, (56 / 4 + 24 / 4) / 2, (16 / 4) / 2]),
        ("mean", 4, [(98 / 4 + 18 / 4) / 2, (1568 / 4 + 288 / 4) / 2, (256 / 4) / 2]),
    ],
)
def test_attention_functions_on_hand_made_activations(function, p, expected):
    scores = _scores(OneByOne().eval(), X, function=function, p=p)
    torch.testing.assert_close(scores, torch.tensor(expected, dtype=torch.float64))


def test_random_source_ignores_the_batch_contents():
    model = OneByOne().eval()
    a = _scores(model, X, source="random")
    b = _scores(model, X * 100, source="random")
    torch.testing.assert_close(a, b)


def test_bad_options_are_refused():
    from prunebench.errors import ConfigError

    with pytest.raises(ConfigError, match="function must be one of"):
        make_method("aap", {"function": "median"})
    with pytest.raises(ConfigError, match="has no option"):
        make_method("aap", {"q": 1})


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2", "vgg11", "shufflenetv2", "lenet300_100"])
def test_every_group_has_attention_points(name, caplog):
    channels, size = (1, 28) if name.startswith("lenet") else (3, 32)
    arch = surgery.dense_architecture(name, 10, channels, size)
    model = surgery.instantiate(arch).eval()
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    with caplog.at_level(logging.INFO, logger="prunebench"):
        points = attention_points(model, groups, arch.example_input(2))
    assert {g.name for g in groups} == set(points.values())
    # Reading a group at its norm layers (no activation after it) is said, never silent.
    said = "with no activation after them read at their norm" in caplog.text
    assert said == (name == "mobilenetv2"), caplog.text
    if name == "resnet20":
        # The stage-1 stream is read after the post-addition ReLU of each of its blocks.
        stream = {m for m, g in points.items() if g == "conv1"}
        assert stream == {"relu", "layer1.0.relu2", "layer1.1.relu2", "layer1.2.relu2"}
    if name == "mobilenetv2":
        # A linear bottleneck has no activation: it is read at its batch norms.
        assert points["features.1.body.2.1"] == "features.1.body.2.0"


@pytest.mark.parametrize("name", ["vgg16", "resnet56"])
def test_mean_and_sum_pick_different_channels_only_under_a_global_ranking(name):
    # The attention-function ablation (one-shot to 57.73 % params, configs/paper/ablations_vgg16.yaml)
    # is only informative globally: within one layer sum = mean x map size orders channels alike.
    from prunebench.measure.cost import complexity
    from prunebench.select.channels import resolve_rate, select_by_rate
    from prunebench.select.policies import RateSelection

    arch = surgery.dense_architecture(name, 10, 3, 32)
    torch.manual_seed(0)
    model = surgery.instantiate(arch).eval()
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    dense = complexity(model, arch.example_input())
    scores = {}
    for function in ("mean", "sum"):
        ctx = ScoringContext(model, groups, x, torch.Generator().manual_seed(0), 1)
        scores[function] = make_method("aap", {"function": function}).score(ctx)
    # The fraction of channels that the mean ranking removes to reach the ablation's cut.
    sel = RateSelection(1.0, "global", ("params", 57.73))
    fraction = resolve_rate(sel, scores["mean"], model, arch, dense, 1, torch.device("cpu"))[0]
    for scope, same in (("layerwise", True), ("global", False)):
        mean, total = (select_by_rate(scores[f], fraction, scope, 1) for f in ("mean", "sum"))
        assert (mean == total) is same, scope


@pytest.mark.parametrize("name", ["lenet300_100", "resnet20", "mobilenetv2", "vgg11"])
def test_figure_1as_maps_average_to_aaps_score_of_that_image(name):
    """The maps layer is one whose mean map is AAP's score (a group read at one point); an MLP has none."""
    size, channels = (28, 1) if name.startswith("lenet") else (32, 3)
    arch = surgery.dense_architecture(name, 10, channels, size, {})
    torch.manual_seed(0)
    model = surgery.instantiate(arch).eval()
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    x = torch.randn(1, channels, size, size)
    found = layer_maps(model, groups, x)
    if name == "lenet300_100":
        assert found is None
        return
    group, maps = found
    assert maps.dim() == 3 and maps.shape[1] * maps.shape[2] > 1
    with torch.no_grad():
        score = make_method("aap", {}).score(ScoringContext(model, groups, x, torch.Generator(), 0))
    assert torch.allclose(maps.flatten(1).mean(1).double(), score[group])
