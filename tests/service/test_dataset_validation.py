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


def _raw_cases(frame) -> dict[str, tuple[bytes, str, str]]:
    header = ",".join(frame.columns)
    row = ",".join(f"{v:.3f}" for v in frame.iloc[0])
    flag = frame.astype(object)
    flag["in1"] = [bool(i % 2) for i in range(len(flag))]
    parquet = io.BytesIO()
    frame.assign(in1=flag["in1"].astype(bool)).to_parquet(parquet)
    return {
        # pandas would read the extra field as an index and shift every value left
        "long_row": (f"{header}\n{row},9.9\n".encode(), "d.csv", "more fields than the header"),
        # pandas would rename the second one 'in0.1'
        "dup_header": (f"in0,{header}\n1.0,{row}\n".encode(), "d.csv", "duplicate columns 'in0'"),
        "bool_csv": (_csv(flag), "d.csv", "boolean columns 'in1'"),
        "bool_parquet": (parquet.getvalue(), "d.parquet", "boolean columns 'in1'"),
    }


@pytest.mark.parametrize("case", ["long_row", "dup_header", "bool_csv", "bool_parquet"])
def test_datasets_strict_tables(ctx, frame, graph_id, case) -> None:
    data, name, pattern = _raw_cases(frame)[case]
    with pytest.raises(InvalidInputError, match=pattern):
        create_dataset(ctx, "t1", graph_id, data, name)
    assert list_datasets(ctx, "t1", 10, 0)[1] == 0


@pytest.fixture
def small_ctx(settings, queue):
    from gsnn_edges.service.context import ServiceContext

    limited = settings.model_copy(update={"max_table_cells": 5_000})
    ctx = ServiceContext.from_settings(limited, enqueue=queue.append)
    yield ctx
    ctx.db.dispose()


def test_datasets_over_the_cell_limit_are_refused(small_ctx, frame, bench) -> None:
    gid = create_graph(small_ctx, "t1", None, bench.partial.to_json()).id
    parquet = io.BytesIO()
    frame.to_parquet(parquet)  # 300 rows x 12 columns = 3,600 cells: allowed
    assert create_dataset(small_ctx, "t1", gid, parquet.getvalue(), "d.parquet").n_samples == 300
    big = pd.concat([frame] * 2, ignore_index=True)  # 7,200 cells
    for data, name in ((_csv(big), "d.csv"), (big.to_parquet(), "d.parquet")):
        with pytest.raises(InvalidInputError, match="7200 cells.*GSNN_EDGES_MAX_TABLE_CELLS"):
            create_dataset(small_ctx, "t1", gid, data, name)
    assert list_datasets(small_ctx, "t1", 10, 0)[1] == 1


def test_parquet_bombs_are_refused_from_the_footer(ctx, graph_id) -> None:
    """Small files that decode to gigabytes: 60 M rows of zeros (over the default 50 M
    cells), and 64 rows of one dictionary-encoded 16 MiB string; both refused within 2 s
    from the footer alone (written here chunk by chunk, never held decoded)."""
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    zeros = pa.table({"in0": np.zeros(1_000_000)})
    rows = io.BytesIO()
    with pq.ParquetWriter(rows, zeros.schema, compression="zstd") as w:
        for _ in range(60):
            w.write_table(zeros)
    big_string = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(64, dtype=np.int32)), pa.array(["x" * 2**24])
    )
    strings = io.BytesIO()
    pq.write_table(pa.table({"in0": big_string}), strings, compression="zstd")
    for buf, pattern in (
        (rows, "60000000 rows.*MAX_TABLE_CELLS"),
        (strings, "not stored as numbers"),
    ):
        assert len(buf.getvalue()) < 2_000_000
        t0 = time.perf_counter()
        with pytest.raises(InvalidInputError, match=pattern):
            create_dataset(ctx, "t1", graph_id, buf.getvalue(), "b.parquet")
        assert time.perf_counter() - t0 < 2.0
    assert list_datasets(ctx, "t1", 10, 0)[1] == 0
