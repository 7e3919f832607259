"""Edge pages from the stored layout (``service.edge_store``) equal the full-table scan the
service did before it, on tables of this layout and of the one before, and read only the
row groups a page needs."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from gsnn_edges.edge_columns import (
    COLUMN_DEFAULTS,
    CONFIRM_COLUMNS,
    CSV_QUOTED_START,
    EDGE_COLUMNS,
    FLOAT_EDGE_COLUMNS,
)
from gsnn_edges.inference.confirm import EdgeConfirmation, with_confirmation
from gsnn_edges.inference.edge_table import edge_table
from gsnn_edges.service import repository as repo
from gsnn_edges.service.datasets import create_dataset
from gsnn_edges.service.edge_store import CANDIDATES, LAYOUT_KEY, EdgeTableFile
from gsnn_edges.service.graphs import create_graph
from gsnn_edges.service.jobs import submit_job
from gsnn_edges.service.results import EdgeQuery, edge_page, edges_csv

TENANT, ATTEMPT = "t1", "attempt-a"
# names whose code point order is not their index order, prefixes of each other, non-ASCII,
# formula starts (CSV quoting) and a quote
NAMES = ["f1", "f10", "f2", "Zeta", "alpha", "é", "Ω", "=sum", "-x", "'q", "f1 b", "ß"]


def synthetic_edges(n: int, seed: int = 0, confirmed: int = 6) -> pd.DataFrame:
    """An ``edge_table`` of ``n`` nodes with tied scores, an unscored target (NaN score
    and p-value: sorted last), NaN p-values on scored pairs, graph edges and ``confirmed``
    confirmed candidates."""
    rng = np.random.default_rng(seed)
    names = [*NAMES, *(f"n{i:03d}" for i in range(n - len(NAMES)))][:n]
    scores = rng.standard_normal((n, n)).round(1)  # ties
    p = stats.norm.sf(scores)
    scores[:, 3] = np.nan
    p[:, 3] = np.nan
    p[rng.random((n, n)) < 0.05] = np.nan
    edges = edge_table(scores, names, rng.random((n, n)) < 0.15, p)
    top = edges[~edges["has_edge"]].head(confirmed)
    conf_p = rng.uniform(0, 0.2, confirmed)
    confirmation = EdgeConfirmation(
        src=top["src_idx"].to_numpy(),
        dst=top["dst_idx"].to_numpy(),
        effect=rng.standard_normal(confirmed),
        p_values=conf_p,
        q_values=np.minimum(conf_p * 2, 1.0),
        theta=np.zeros((confirmed, 1)),
        n_train_rows=10,
        n_heldout_rows=5,
        equivalent=rng.random((confirmed, n)) < 0.1,
    )
    return with_confirmation(edges, confirmation)


# ------------------------------------------------------------------ the code before
def reference_query(frame: pd.DataFrame, q: EdgeQuery) -> pd.DataFrame:
    """``results.query_edges`` as it was before the layout: the whole table, numpy masks."""
    frame = frame.rename(columns={"src_func": "src", "dst_func": "dst"})
    frame = frame.assign(**{k: v for k, v in COLUMN_DEFAULTS.items() if k not in frame.columns})
    keep = np.ones(len(frame), dtype=bool)
    if q.src is not None:
        keep &= (frame["src"] == q.src).to_numpy()
    if q.dst is not None:
        keep &= (frame["dst"] == q.dst).to_numpy()
    if q.min_score is not None:
        keep &= (frame["score"] >= q.min_score).to_numpy()
    if q.max_q_value is not None:
        keep &= (frame["q_value"] <= q.max_q_value).to_numpy()
    if q.max_confirm_q_value is not None:
        keep &= (frame["confirm_q_value"] <= q.max_confirm_q_value).to_numpy()
    if q.candidates_only:
        keep &= ~frame["has_edge"].to_numpy(bool)
    return frame.loc[keep, list(EDGE_COLUMNS)]


def reference_csv(frame: pd.DataFrame) -> str:
    """``results.edges_csv_chunks`` as it was (one chunk): names quoted like the export."""

    def quoted(names: pd.Series) -> pd.Series:
        text = names.astype(str)
        return text.where(~text.str.contains(f"^[{CSV_QUOTED_START}]"), "'" + text)

    frame = frame.assign(src=quoted(frame["src"]), dst=quoted(frame["dst"]))
    return ",".join(frame.columns) + "\n" + frame.to_csv(index=False, header=False)


def read_export(text: str) -> pd.DataFrame:
    """A CSV export parsed cell by cell: names as written (a name like ``NA`` stays
    text), float columns as floats (``3`` and ``3.0`` alike) with empty cells as NaN,
    flags as bool (``true`` or ``True``)."""
    floats = {c: [""] for c in FLOAT_EDGE_COLUMNS}
    types = {"src": str, "dst": str, **dict.fromkeys(FLOAT_EDGE_COLUMNS, float)}
    kw = {"dtype": types, "keep_default_na": False, "na_values": floats}
    return pd.read_csv(io.StringIO(text), **kw)


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Names as text, floats as floats (None as NaN), flags as bool (also in an empty
    page) and a fresh index, so frames from either path compare cell by cell."""
    types = {"src": str, "dst": str, "has_edge": bool, "confirmed": bool}
    return frame.astype({**types, **dict.fromkeys(FLOAT_EDGE_COLUMNS, float)}).reset_index(
        drop=True
    )


# ------------------------------------------------------------------ storing
@pytest.fixture
def job_id(ctx, bench, frame) -> str:
    """A succeeded job whose published attempt is ATTEMPT (its files are the test's)."""
    graph = create_graph(ctx, TENANT, "g", bench.partial.to_json())
    dataset = create_dataset(ctx, TENANT, graph.id, frame.to_csv(index=False).encode(), "d.csv")
    spec = {"model": {"channels": 4, "layers": 3}, "training": {"epochs": 1}}
    job = submit_job(ctx, TENANT, graph.id, dataset.id, spec, None).job
    with ctx.db.session() as s:
        assert repo.claim_job(s, job.id, ATTEMPT, "cpu")
        assert repo.finish_job(s, job.id, ATTEMPT, "succeeded", device="cpu")
    return job.id


def store_old_layout(ctx, job_id: str, edges: pd.DataFrame, nan_as_null: bool) -> None:
    """The edge table as jobs stored it before: ``edges.parquet`` only. ``nan_as_null``
    False: a writer that kept NaN as NaN, no confirmation columns, small row groups (the
    statistics' min/max then skip NaN: a "none match" verdict must still hold)."""
    key = ctx.store.job_key(job_id, "edges", ATTEMPT)
    if nan_as_null:
        ctx.store.write_parquet(key, edges)  # the runner's call before the layout
        return
    edges = edges.drop(columns=list(CONFIRM_COLUMNS))
    table = pa.Table.from_pandas(edges, preserve_index=False)
    for name in ("score", "p_value", "q_value"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pa.array(edges[name].to_numpy(), from_pandas=False))
    assert table.column("score").null_count == 0 and np.isnan(edges["score"]).any()
    with ctx.store.open_for_write(key) as fh:
        pq.write_table(table, fh, row_group_size=64)


LAYOUTS = ["new", "old", "old_nan_values"]


def store(ctx, job_id: str, edges: pd.DataFrame, layout: str) -> pd.DataFrame:
    """Store ``edges`` in ``layout``; returns the table as the code before read it back."""
    if layout == "new":
        ctx.store.write_edges(job_id, edges, ATTEMPT, row_group_rows=64)
    else:
        store_old_layout(ctx, job_id, edges, nan_as_null=layout == "old")
    return ctx.store.read_parquet(ctx.store.job_key(job_id, "edges", ATTEMPT))


def queries(edges: pd.DataFrame):
    """Every combination of every filter: a real and an unknown node, thresholds taken
    from stored values (a served value sent back selects its own row)."""
    scored = edges[edges["q_value"].notna()]
    row = scored.iloc[len(scored) // 3]
    confirm_q = edges["confirm_q_value"].dropna().median()
    for src, dst, min_score, max_q, max_cq, cand in itertools.product(
        [None, NAMES[5], "nope"],
        [None, NAMES[7]],
        [None, float(row["score"])],
        [None, float(row["q_value"])],
        [None, float(confirm_q)],
        [True, False],
    ):
        yield EdgeQuery(src, dst, min_score, max_q, max_cq, cand)


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("layout", LAYOUTS)
def test_edge_store_pages_and_csv_equal_the_full_scan(ctx, job_id, layout) -> None:
    edges = synthetic_edges(40)
    assert edges["score"].isna().sum() >= 39 and edges["confirmed"].sum() == 6
    stored = store(ctx, job_id, edges, layout)
    n_checked = 0
    for q in queries(edges):
        want = reference_query(stored, q)
        for offset, limit in ((0, 1000), (37, 25), (len(want) - 3, 100), (5_000, 10)):
            offset = max(offset, 0)
            total, items = edge_page(ctx, TENANT, job_id, q, offset, limit)
            assert total == len(want), q
            got = plain(pd.DataFrame(items, columns=list(EDGE_COLUMNS)))
            expected = plain(want.iloc[offset : offset + limit])
            pd.testing.assert_frame_equal(got, expected, obj=str((q, offset)))
        csv = b"".join(edges_csv(ctx, TENANT, job_id, q)).decode()
        assert csv.splitlines()[0] == ",".join(EDGE_COLUMNS)
        exported, expected = read_export(csv), read_export(reference_csv(want))
        pd.testing.assert_frame_equal(exported, expected, obj=str(q))
        n_checked += len(want) > 0
    assert n_checked > 20  # many combinations select rows (confirm filters: not on old_nan_values)


def test_edge_store_write_keeps_the_table_and_sorts_copies_stably(ctx, job_id) -> None:
    """Whole-table readers (evaluate) see the same frame; the by-name copies hold the same
    rows, sorted by name and in the table's order within a name; NaN is stored as null."""
    edges = synthetic_edges(30)
    stored = store(ctx, job_id, edges, "new")
    pd.testing.assert_frame_equal(stored, edges)
    key = lambda what: ctx.store.job_key(job_id, what, ATTEMPT)
    for what, column in (("edges_by_src", "src_func"), ("edges_by_dst", "dst_func")):
        copy = ctx.store.read_parquet(key(what))
        names = copy[column].astype(str).tolist()
        assert names == sorted(names)
        position = edges.reset_index().set_index(["src_func", "dst_func"])["index"]
        rows = position.loc[list(zip(copy["src_func"], copy["dst_func"], strict=True))]
        assert all(np.diff(rows.to_numpy())[np.array(names[1:]) == np.array(names[:-1])] > 0)
        assert len(copy) == len(edges)
    layout = pq.ParquetFile(ctx.store.path(key("edges"))).metadata
    assert layout.num_row_groups == -(-len(edges) // 64)
    last = layout.row_group(layout.num_row_groups - 1)  # the NaN scores, sorted last
    assert last.column(layout.schema.names.index("score")).statistics.null_count > 0
    meta = pq.read_schema(ctx.store.path(key("edges"))).metadata[LAYOUT_KEY]
    assert meta.startswith(b'{"sorted_by": "score", "candidates": [')


class ReadSpy:
    """Counts the row groups pyarrow decodes (a spy on ParquetFile's readers; they still
    run): ``full`` the reads of served rows (p_value among the columns: no filter reads
    it), ``columns`` the filter-column reads."""

    def __init__(self, monkeypatch) -> None:
        self.full: list[int] = []
        self.columns: list[int] = []
        batches = pq.ParquetFile.iter_batches

        def iter_batches(pf, *args, **kwargs):
            served = "p_value" in (kwargs.get("columns") or ["p_value"])
            (self.full if served else self.columns).extend(kwargs["row_groups"])
            return batches(pf, *args, **kwargs)

        monkeypatch.setattr(pq.ParquetFile, "iter_batches", iter_batches)
        for name in ("read", "read_row_group", "read_row_groups"):  # paths we do not use
            monkeypatch.setattr(pq.ParquetFile, name, self._forbidden)

    @staticmethod
    def _forbidden(*args, **kwargs):
        raise AssertionError("read the file outside iter_batches")

    def take(self) -> tuple[list[int], list[int]]:
        out = (self.full, self.columns)
        self.full, self.columns = [], []
        return out


def test_edge_store_pages_read_only_the_row_groups_they_need(ctx, job_id, monkeypatch) -> None:
    edges = synthetic_edges(60)  # 3,540 rows: 56 row groups of 64
    ctx.store.write_edges(job_id, edges, ATTEMPT, row_group_rows=64)
    spy = ReadSpy(monkeypatch)
    page = lambda q, offset=0, limit=100: edge_page(ctx, TENANT, job_id, q, offset, limit)

    total, rows = page(EdgeQuery())  # footer counts: no column read at all
    assert total == (~edges["has_edge"]).sum() and spy.take() == ([0, 1], [])
    total, rows = page(EdgeQuery(candidates_only=False), offset=2_000)
    assert [i["score"] for i in rows] == list(edges["score"].iloc[2_000:2_100])
    assert spy.take() == ([31, 32], [])
    cut = float(edges["score"].iloc[1_000])  # sorted: only the boundary row group is read
    total, _ = page(EdgeQuery(min_score=cut))
    full, columns = spy.take()
    assert len(columns) == 1 and full == [0, 1]
    total, rows = page(EdgeQuery(src="f10"))  # the by-source copy: the node's row groups
    full, columns = spy.take()
    assert total == len(rows) == (~edges["has_edge"] & (edges["src_func"] == "f10")).sum()
    assert len(full) <= 2 and len(columns) <= 2
    total, rows = page(EdgeQuery(dst="Ω", candidates_only=False))
    assert total == 59 and len(set(spy.take()[0])) <= 2


def test_edge_store_file_statistics_only_decide_none_for_old_files(tmp_path) -> None:
    """An old file whose NaN are values (min/max skip them): "all match" is never taken
    from its statistics, "none match" still is (NaN never matches)."""
    frame = pd.DataFrame({"score": [np.nan, 2.0, 3.0, np.nan], "has_edge": [False] * 4})
    table = pa.table({"score": pa.array(frame["score"].to_numpy(), from_pandas=False)})
    pq.write_table(table.append_column("has_edge", pa.array([False] * 4)), tmp_path / "t.pq")
    source = EdgeTableFile(tmp_path / "t.pq")
    assert source.layout is None
    assert source.counts([("score", ">=", 1.0)]).tolist() == [2]
    assert source.counts([("score", ">=", 5.0), CANDIDATES]).tolist() == [0]
    assert source.counts([("confirm_q_value", "<=", 1.0)]).tolist() == [0]  # no such column
