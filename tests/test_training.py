"""The compute ledger of a training phase: images counted per batch, the same after a resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench.config.run import Config, TrainConfig
from prunebench.data.batches import Batches
from prunebench.data.datasets import Split
from prunebench.train.loop import train_epochs


class Interrupted(Exception):
    pass


def _setup(tmp_path):
    gen = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (70, 1, 4, 4), dtype=torch.uint8, generator=gen), torch.arange(70) % 2)
    batches = Batches(split, torch.tensor([0.5]), torch.tensor([0.25]), 32, torch.device("cpu"))  # 32 + 32 + 6
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    return model, batches, TrainConfig(epochs=3, batch_size=32, lr=0.1)


def test_images_are_counted_per_batch_and_survive_a_resume(tmp_path):
    model, batches, cfg = _setup(tmp_path)
    whole = train_epochs(model, batches, cfg, range(1, 4), cfg.lr_at, (0, "t"), tmp_path / "a.pt", "h")
    assert whole == 3 * 70  # the last, short batch of each epoch counts its 6 images

    def kill_in_third_epoch(epoch, _model):
        if epoch == 3:  # epochs 1 and 2 are checkpointed; epoch 3 was trained but is lost
            raise Interrupted

    model, batches, cfg = _setup(tmp_path)
    args = (model, batches, cfg, range(1, 4), cfg.lr_at, (0, "t"), tmp_path / "b.pt", "h")
    with pytest.raises(Interrupted):
        train_epochs(*args, on_epoch_end=kill_in_third_epoch)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["images"] == 2 * 70
    assert train_epochs(*args) == whole  # the resumed phase trains one epoch and reports all three
    # A finished phase called again (a kill after its last epoch) trains nothing and still says 3.
    assert train_epochs(*args) == whole


def test_a_resumed_phase_of_a_model_with_dropout_equals_an_uninterrupted_one(tmp_path):
    def setup():
        model, batches, cfg = _setup(tmp_path)
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 2)), batches, cfg

    model, batches, cfg = setup()
    train_epochs(model, batches, cfg, range(0, 3), cfg.lr_at, (0, "d"), tmp_path / "a.pt", "h")
    whole = model.state_dict()

    def kill_after_first_epoch(epoch, _model):
        if epoch == 1:
            raise Interrupted

    resumed, batches, cfg = setup()
    args = (resumed, batches, cfg, range(0, 3), cfg.lr_at, (0, "d"), tmp_path / "b.pt", "h")
    with pytest.raises(Interrupted):
        train_epochs(*args, on_epoch_end=kill_after_first_epoch)
    torch.manual_seed(123)  # another process: the global generator in another state
    resumed, batches, cfg = setup()
    train_epochs(resumed, batches, cfg, range(0, 3), cfg.lr_at, (0, "d"), tmp_path / "b.pt", "h")
    assert all(torch.equal(whole[k], v) for k, v in resumed.state_dict().items())


def test_bf16_precision_trains_under_autocast_and_is_its_own_identity(tmp_path, monkeypatch):
    from prunebench.config.run import config_from_dict, config_hash, dense_hash
    from prunebench.train.loop import evaluate

    seen = []
    real_linear = nn.Linear.forward

    def recording(self, x):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real_linear(self, x)

    monkeypatch.setattr(nn.Linear, "forward", recording)
    weights = {}
    for precision in ("fp32", "bf16"):
        model, batches, cfg = _setup(tmp_path)
        cfg.precision = precision
        train_epochs(model, batches, cfg, range(0, 2), cfg.lr_at, (0, precision), tmp_path / f"{precision}.pt", "h")
        weights[precision] = model[1].weight.detach().clone()
        assert torch.isfinite(weights[precision]).all() and model[1].weight.dtype == torch.float32
        assert 0 <= evaluate(model, batches, precision) <= 100
    assert not any(seen[: len(seen) // 2]) and all(seen[len(seen) // 2 :])  # fp32 first, then bf16 autocast
    assert not torch.equal(weights["fp32"], weights["bf16"])
    fp32, bf16 = config_from_dict({}), config_from_dict({"train": {"precision": "bf16"}})
    assert config_hash(fp32) != config_hash(bf16) and dense_hash(fp32) != dense_hash(bf16)
    # The default stays out of the identity: runs from before the key keep their hashes.
    current = config_hash(fp32)
    real_to_dict = Config.to_dict

    def without_the_key(self):
        d = real_to_dict(self)
        del d["train"]["precision"]
        return d

    monkeypatch.setattr(Config, "to_dict", without_the_key)
    assert config_hash(fp32) == current
