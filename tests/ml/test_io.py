"""ml.io: writes land whole or not at all, and leave no temporary file behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.io import atomic_path, atomic_torch_save, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_writers_replace_the_target_and_leave_nothing_else(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "b.txt", "old")
    atomic_write_text(tmp_path / "b.txt", "new é")
    atomic_write_json(tmp_path / "sub" / "c.json", {"x": [1, 2]}, indent=2)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "new é"
    assert json.loads((tmp_path / "sub" / "c.json").read_text()) == {"x": [1, 2]}
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.bin", "b.txt", "c.json"]


def test_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_temp_is_in_the_same_folder_with_the_requested_suffix(tmp_path):
    target = tmp_path / "crop.npy"
    with atomic_path(target, suffix=".npy") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".npy") and tmp != target
        np.save(tmp, np.arange(3))  # np.save would append .npy to a name without it
    assert np.load(target).tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["crop.npy"]


def test_atomic_torch_save_round_trips(tmp_path):
    import torch

    atomic_torch_save({"w": torch.ones(2)}, tmp_path / "model.pt")
    assert torch.load(tmp_path / "model.pt", weights_only=True)["w"].tolist() == [1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
