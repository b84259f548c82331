import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prunebench import surgery
from prunebench.select.channels import (
    layer_aware_thresholds,
    layer_weights,
    round_kept,
    select_by_rate,
    select_by_threshold,
)


def test_layerwise_rate_prunes_lowest_per_group_and_respects_the_floor():
    scores = {"a": torch.tensor([3.0, 1.0, 2.0, 0.5]), "b": torch.tensor([1.0, 0.0])}
    assert select_by_rate(scores, 0.5, "layerwise", 1) == {"a": [1, 3], "b": [1]}
    assert select_by_rate(scores, 1.0, "layerwise", 1) == {"a": [1, 2, 3], "b": [1]}


def test_global_rate_ranks_all_groups_together():
    scores = {"a": torch.tensor([3.0, 1.0, 2.0, 0.5]), "b": torch.tensor([0.1, 0.2])}
    # 3 of 6 channels: the lowest are b0, b1 (but b keeps one), a3, then a1.
    assert select_by_rate(scores, 0.5, "global", 1) == {"a": [1, 3], "b": [0]}


def test_threshold_is_inclusive_so_zero_removes_dead_channels():
    scores = {"a": torch.tensor([0.0, 0.3, 0.0, 1.0]), "b": torch.tensor([0.0, 0.0])}
    assert select_by_threshold(scores, {"a": 0.0, "b": 0.0}, 1) == {"a": [0, 2], "b": [0]}
    assert select_by_threshold(scores, {"a": 0.3, "b": 0.0}, 2) == {"a": [0, 2], "b": []}


def test_layer_aware_thresholds_scale_the_global_threshold():
    assert layer_aware_thresholds(0.5, {"a": 0.2, "b": 0.8}) == {"a": 0.1, "b": 0.4}


@pytest.mark.parametrize("by", ["params", "flops"])
def test_layer_weights_are_shares_of_the_remaining_model(by):
    arch = surgery.dense_architecture("lenet5", 10, 1, 28)
    model = surgery.instantiate(arch)
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    w = layer_weights(model, groups, arch.example_input(), by)
    if by == "params":
        assert w["fc1"] == pytest.approx((800 * 500 + 500) / 431080)
        assert w["conv1"] == pytest.approx(520 / 431080)
    else:
        assert w["conv2"] == pytest.approx(2 * 8 * 8 * 50 * 20 * 25 / 4586000)
    assert 0 < sum(w.values()) < 1  # the classifier is not a group


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    fraction=st.floats(0, 1),
    scope=st.sampled_from(["global", "layerwise"]),
    floor=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_rate_selection_properties(sizes, fraction, scope, floor, seed):
    gen = torch.Generator().manual_seed(seed)
    scores = {f"g{i}": torch.rand(n, generator=gen) for i, n in enumerate(sizes)}
    chosen = select_by_rate(scores, fraction, scope, floor)
    for g, idxs in chosen.items():
        n = len(scores[g])
        assert len(set(idxs)) == len(idxs) and all(0 <= i < n for i in idxs)
        assert n - len(idxs) >= min(floor, n)  # never below the floor (nor below what exists)
        kept = [i for i in range(n) if i not in idxs]
        if idxs and kept:  # within a group, the removed never outscore the kept
            assert max(scores[g][idxs]) <= min(scores[g][kept])


def _resnet20():
    arch = surgery.dense_architecture("resnet20", 10, 3, 32)
    model = surgery.instantiate(arch)
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    stream = max(groups, key=lambda g: len(g.out_layers))
    assert len(stream.out_layers) >= 4  # a residual stage: the stem or shortcut and each block's last conv
    return arch, model, groups, stream


@pytest.mark.parametrize("by", ["params", "flops"])
def test_a_residual_stream_weighs_like_one_of_its_layers_not_their_sum(by):
    arch, model, groups, stream = _resnet20()
    w = layer_weights(model, groups, arch.example_input(), by)
    single = {}  # each layer of the stream measured as a group of its own
    for layer in stream.out_layers:
        alone = type(stream)(**{**vars(stream), "out_layers": [layer], "norm_layers": []})
        single[layer] = layer_weights(model, [alone], arch.example_input(), by)[stream.name]
    assert min(single.values()) < w[stream.name] <= 1.05 * max(single.values())


def test_l1_scores_of_coupled_channels_do_not_grow_with_the_layers_they_span():
    from prunebench.score.filters import filter_l1

    _, model, groups, stream = _resnet20()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):  # every filter of every layer: L1 norm 1
                m.weight.fill_(1.0 / m.weight[0].numel())
    for g in groups:
        assert torch.allclose(filter_l1(model, g), torch.ones(g.size, dtype=torch.float64)), g.name


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 70), min_size=1, max_size=5),
    fraction=st.floats(0, 1),
    multiple=st.sampled_from([1, 4, 8]),
    seed=st.integers(0, 1000),
)
def test_round_to_keeps_a_multiple_of_channels_by_removing_fewer_of_the_lowest(sizes, fraction, multiple, seed):
    gen = torch.Generator().manual_seed(seed)
    scores = {f"g{i}": torch.rand(n, generator=gen) for i, n in enumerate(sizes)}
    chosen = select_by_rate(scores, fraction, "layerwise", 1)
    rounded = round_kept(scores, chosen, multiple)
    for g, s in scores.items():
        kept = len(s) - len(rounded[g])
        assert set(rounded[g]) <= set(chosen[g])  # removes fewer, never others
        if multiple == 1:
            assert rounded[g] == chosen[g]
        elif chosen[g]:
            assert kept % multiple == 0 or kept == len(s)
            assert kept - (len(s) - len(chosen[g])) < multiple  # the next multiple up, no further
        kept_scores = s[[i for i in range(len(s)) if i not in rounded[g]]]
        if rounded[g]:  # what goes is the lowest-scoring
            assert s[rounded[g]].max() <= kept_scores.min()
