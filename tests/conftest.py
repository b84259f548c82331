from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
