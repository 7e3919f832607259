"""Dataset parsing and validation: every bad table is refused and nothing is stored."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from gsnn_edges.service.dataset_table import validate_table
from gsnn_edges.service.datasets import create_dataset, list_datasets
from gsnn_edges.service.errors import InvalidInputError
from gsnn_edges.service.graphs import create_graph


@pytest.fixture
def graph_id(ctx, bench):
    return create_graph(ctx, "t1", None, bench.partial.to_json()).id


def _csv(frame) -> bytes:
    return frame.to_csv(index=False).encode()


def _bad_frames(frame):
    missing = frame.drop(columns=["o2"])
    extra = frame.assign(zzz=1.0)
    nonnum = frame.astype(object)
    nonnum.iat[3, 1] = "abc"
    nan = frame.copy()
    nan.iat[4, 0] = np.nan
    inf = frame.copy()
    inf.iat[2, 2] = np.inf
    return {
        "missing": (missing, "missing columns.*'o2'"),
        "extra": (extra, "not input or output nodes.*'zzz'"),
        "nonnumeric": (nonnum, "non-numeric.*row 4 column 'in1'.*'abc'"),
        "nan": (nan, "NaN or infinite.*'in0'.*rows 5"),
        "inf": (inf, "NaN or infinite.*'in2'.*rows 3"),
        "zero_rows": (frame.iloc[:0], "zero data rows"),
    }


@pytest.mark.parametrize("case", ["missing", "extra", "nonnumeric", "nan", "inf", "zero_rows"])
def test_datasets_bad_table_rejected_and_nothing_stored(ctx, frame, graph_id, case) -> None:
    bad, pattern = _bad_frames(frame)[case]
    with pytest.raises(InvalidInputError, match=pattern):
        create_dataset(ctx, "t1", graph_id, _csv(bad), "d.csv")
    assert list_datasets(ctx, "t1", 10, 0)[1] == 0
    stored = ctx.store.root / "datasets"
    assert not stored.exists() or not any(stored.iterdir())


def test_datasets_parquet_accepted_and_columns_reordered(ctx, frame, graph_id) -> None:
    buf = io.BytesIO()
    frame[frame.columns[::-1]].to_parquet(buf)
    row = create_dataset(ctx, "t1", graph_id, buf.getvalue(), "d.parquet")
    stored = ctx.store.read_parquet(ctx.store.dataset_key(row.id))
    assert row.n_samples == 300 and list(stored.columns) == list(frame.columns)
    np.testing.assert_allclose(stored.to_numpy(), frame.to_numpy(), rtol=1e-6)


def test_datasets_unknown_graph_rejected(ctx, frame) -> None:
    with pytest.raises(InvalidInputError, match="graph 'nope' not found"):
        create_dataset(ctx, "t1", "nope", _csv(frame), "d.csv")


def test_datasets_other_tenants_graph_is_unknown(ctx, frame, graph_id) -> None:
    with pytest.raises(InvalidInputError, match="not found"):
        create_dataset(ctx, "t2", graph_id, _csv(frame), "d.csv")


def test_datasets_header_problems_listed_in_one_message() -> None:
    frame = pd.DataFrame([[1.0] * 6], columns=["b", "a", "b", "zz", "zz", "a"])
    with pytest.raises(InvalidInputError) as info:
        validate_table(frame, ["a", "b"], ["o1", "o2"])
    err = info.value
    assert err.message == (
        "duplicate columns 'a', 'b', 'zz'; missing columns for graph nodes 'o1', 'o2'; "
        "columns that are not input or output nodes of the graph 'zz', 'zz'"
    )
    assert [e["loc"] for e in err.errors] == [["file", "header"]] * 3
