"""Artifact store: atomic writes and round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gsnn_edges.service.artifacts import ArtifactStore


def test_artifacts_write_is_atomic_and_leaves_no_temp_files(tmp_path) -> None:
    store = ArtifactStore(tmp_path)
    store.write_bytes("a/b.bin", b"old")
    with pytest.raises(TypeError):
        store.write_bytes("a/b.bin", "not bytes")  # type: ignore[arg-type]
    assert store.read_bytes("a/b.bin") == b"old"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.bin"]


def test_artifacts_round_trip_npy_parquet_json(tmp_path) -> None:
    store = ArtifactStore(tmp_path)
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    store.write_npy("w.npy", w)
    np.testing.assert_allclose(store.read_npy("w.npy"), w)
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    store.write_parquet("t.parquet", frame)
    pd.testing.assert_frame_equal(store.read_parquet("t.parquet"), frame)
    store.write_json("m.json", {"x": np.float32(1.5), "nan": float("nan")})
    assert store.read_json("m.json") == {"x": 1.5, "nan": None}
