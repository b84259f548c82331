from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def dense_killed_after(epochs: int) -> Iterator[None]:
    """Inside the block, the dense stage's training stops with a KeyboardInterrupt after
    ``epochs`` epochs, its checkpoint written (as after a Ctrl-C)."""
    import prunebench.train.dense

    real = prunebench.train.dense.train_epochs

    def killed(model, batches, train, _epochs, *args, **kwargs):
        real(model, batches, train, range(0, epochs), *args, **kwargs)
        raise KeyboardInterrupt

    prunebench.train.dense.train_epochs = killed
    try:
        yield
    finally:
        prunebench.train.dense.train_epochs = real


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path, monkeypatch):
    """Tests never read or write the user's data cache."""
    monkeypatch.setenv("PRUNEBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("PRUNEBENCH_MIRROR", raising=False)
    monkeypatch.delenv("PRUNEBENCH_METHODS_PATH", raising=False)


TINY = {
    "name": "tiny",
    "seed": 0,
    "data": {
        "dataset": "synthetic",
        "val_size": 100,
        "synthetic": {"size": 16, "channels": 1, "classes": 4, "train": 500, "test": 100},
    },
    "model": {"name": "lenet5"},
    "train": {"epochs": 3, "rewind_epoch": 1, "batch_size": 50, "lr": 0.05, "threads": 1},
    "prune": {"method": "ilp", "policy": "iterative", "policy_options": {"rate": 0.3, "target": 60}},
    "measure": {"latency": False},
}
