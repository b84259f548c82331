import pytest
import torch

from prunebench.config.run import config_from_dict, config_hash, dense_hash
from prunebench.errors import ConfigError


def test_unknown_key_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown config key 'train.epoch'.*did you mean 'train.epochs'"):
        config_from_dict({"train": {"epoch": 3}})


def test_wrong_type_is_refused():
    with pytest.raises(ConfigError, match="train.epochs"):
        config_from_dict({"train": {"epochs": "many"}})


def test_set_overrides_and_parses_yaml_values():
    cfg = config_from_dict({}, ["train.epochs=4", "train.milestones=[2, 3]", "prune.method_options={p: 2}"])
    assert cfg.train.epochs == 4 and cfg.train.milestones == [2, 3] and cfg.prune.method_options == {"p": 2}


def test_table1_preset_with_explicit_override():
    cfg = config_from_dict({"train": {"preset": "cifar10/resnet56", "epochs": 20, "rewind_epoch": 10}})
    assert cfg.train.lr == 0.1 and cfg.train.milestones == [91, 136] and cfg.train.weight_decay == 2e-4
    assert cfg.train.epochs == 20
    with pytest.raises(ConfigError, match="unknown train.preset"):
        config_from_dict({"train": {"preset": "cifar10/resnet57"}})


def test_invalid_values_are_refused():
    with pytest.raises(ConfigError, match="rewind_epoch"):
        config_from_dict({"train": {"epochs": 3, "rewind_epoch": 3}})
    with pytest.raises(ConfigError, match="train.rewind"):
        config_from_dict({"train": {"rewind": "sometimes"}})


def test_lr_schedule():
    cfg = config_from_dict({"train": {"lr": 1.0, "milestones": [2, 4], "gamma": 0.5, "epochs": 6}})
    assert [cfg.train.lr_at(e) for e in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_hashes_ignore_where_data_lives_and_dense_ignores_pruning():
    a = config_from_dict({"data": {"root": "/a"}})
    b = config_from_dict({"data": {"root": "/b", "mirror": "/m", "workers": 2}})
    assert config_hash(a) == config_hash(b)
    c = config_from_dict({"prune": {"method": "aap"}})
    assert dense_hash(a) == dense_hash(c) and config_hash(a) != config_hash(c)
    assert dense_hash(a) != dense_hash(config_from_dict({"seed": 1}))


def test_json_configs_keep_their_exponent_numbers(tmp_path):
    # The workflow pipes each job's config as JSON; YAML 1.1 would read 1e-06 as a string.
    from prunebench.config.run import read_config

    path = tmp_path / "c.json"
    path.write_text('{"prune": {"policy_options": {"lambda0": 1e-06}}}')
    assert read_config(path)["prune"]["policy_options"]["lambda0"] == 1e-06


def test_threads_and_device_are_part_of_every_identity():
    """The thread count and the device change results (synthetic_tiny's dense model: 81.00 %
    validation accuracy with 1 thread, 57.00 % with 2), so a run resumed or shared under another
    is another run."""
    one = config_from_dict({"train": {"threads": 1}})
    for other in ({"train": {"threads": 2}}, {"train": {"threads": 1, "device": "cuda"}}):
        assert config_hash(one) != config_hash(config_from_dict(other))
        assert dense_hash(one) != dense_hash(config_from_dict(other))
    unset = config_from_dict({})  # None: all of torch's threads, resolved where it runs
    assert config_hash(unset) == config_hash(config_from_dict({"train": {"threads": torch.get_num_threads()}}))
