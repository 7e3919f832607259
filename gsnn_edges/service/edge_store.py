"""The stored edge table, laid out so that a page of it never decodes the whole table.

A job's ``N (N - 1)`` scored pairs (4M at 2,000 function nodes) are written once per sort
order of :data:`SORT_ORDERS` (:func:`write_edge_tables`):

- ``edges``: score descending, NaN last, exactly as ``inference.edge_table`` sorted them
  (the file every whole-table reader uses);
- ``edges_by_src`` / ``edges_by_dst``: the same rows sorted by source / destination name,
  stably, so a node's rows are contiguous (one or two row groups) and still in the
  table's order.

Each file has row groups of ``row_group_rows`` rows (default :data:`ROW_GROUP_ROWS`),
Parquet min/max statistics, NaN stored as null, and in its footer (key
:data:`LAYOUT_KEY`) the number of candidate rows (``has_edge`` false) of each row group.

A query is a list of :data:`Filter` ``(column, op, value)``, op one of ``==``, ``>=``,
``<=``; a row matches when every filter holds, and null or NaN never holds (as a pandas
mask). :class:`EdgeTableFile` answers it in two passes over the row groups:

1. count: per row group, the statistics decide "none match", "all match" (the count is
   the row count, or the footer's candidate count) or "some": only the "some" row groups
   read, and only the filters' columns;
2. page: only the row groups that hold matches ``offset .. offset + limit`` are read in
   full, in batches, stopping once the page is full.

Files stored before this layout (row groups of ~1M rows, no footer counts) take the same
path with the statistics trusted for "none match" only: the same answers, more reading.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Rows per row group: a page of up to 1,000 rows spans at most two, each decoded in about
# a millisecond; 4M rows make ~250 row groups (benchmarks/README.md, "Edge pages").
ROW_GROUP_ROWS = 16_384
# Rows per batch when a query streams through a file (CSV export, files of the old layout)
SCAN_BATCH_ROWS = 65_536
# Footer key of this layout's metadata: {"sorted_by": ..., "candidates": [per row group]}
LAYOUT_KEY = b"gsnn_edges.edge_layout"
# result file -> the name column its rows are sorted by (None: score descending)
SORT_ORDERS: dict[str, str | None] = {
    "edges": None,
    "edges_by_src": "src_func",
    "edges_by_dst": "dst_func",
}
Filter = tuple[str, str, Any]
# the filter of candidates_only: pairs that are not edges of the graph yet
CANDIDATES: Filter = ("has_edge", "==", False)
_COMPARE = {"==": pc.equal, ">=": pc.greater_equal, "<=": pc.less_equal}
_COMPARE_NUMPY = {"==": np.equal, ">=": np.greater_equal, "<=": np.less_equal}
# what a row group's statistics say about one filter
NONE, SOME, ALL = 0, 1, 2


# --------------------------------------------------------------------------- writing
def write_edge_tables(
    frame: pd.DataFrame,
    open_file: Callable[[str], AbstractContextManager[BinaryIO]],
    row_group_rows: int = ROW_GROUP_ROWS,
) -> None:
    """Write ``frame`` (an ``inference.edge_table``, score descending) once per
    :data:`SORT_ORDERS` entry, each into ``open_file(name)``."""
    table = pa.Table.from_pandas(frame, preserve_index=False)  # NaN -> null
    candidate = ~frame["has_edge"].to_numpy(bool)
    for what, column in SORT_ORDERS.items():
        order = None if column is None else name_order(frame[column])
        with open_file(what) as fh:
            _write_sorted(fh, table, candidate, order, column, row_group_rows)


def name_order(names: pd.Series) -> np.ndarray:
    """Row order that sorts ``names`` by name (code point order, which is Parquet's byte
    order of UTF-8 statistics); stable, so equal names keep the table's order."""
    cat = names.astype("category")
    labels = np.asarray(cat.cat.categories, dtype=object)
    # the smallest integer type: numpy's stable sort of 16-bit keys is a radix sort
    rank = np.empty(len(labels), dtype=np.min_scalar_type(max(len(labels) - 1, 0)))
    rank[np.argsort(labels, kind="stable")] = np.arange(len(labels))
    return np.argsort(rank[cat.cat.codes.to_numpy()], kind="stable")


def _write_sorted(
    fh: BinaryIO,
    table: pa.Table,
    candidate: np.ndarray,
    order: np.ndarray | None,
    sorted_by: str | None,
    rows: int,
) -> None:
    """One sort order of ``table`` as row groups of ``rows`` rows, with the candidate count
    of each in the footer. Rows are gathered one row group at a time (bounded memory)."""
    starts = np.arange(0, table.num_rows, rows)
    flags = (candidate if order is None else candidate[order]).astype(np.int64)
    counts = np.add.reduceat(flags, starts) if len(starts) else flags[:0]
    layout = {"sorted_by": sorted_by or "score", "candidates": counts.tolist()}
    schema = table.schema.with_metadata({**table.schema.metadata, LAYOUT_KEY: json.dumps(layout)})
    keys = [(sorted_by, "ascending")] if sorted_by else []
    sorting = pq.SortingColumn.from_ordering(
        schema, [*keys, ("score", "descending")], null_placement="at_end"
    )
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    flags = {f.name: "RLE" for f in schema if pa.types.is_boolean(f.type)}
    with pq.ParquetWriter(
        fh,
        schema,
        sorting_columns=sorting,
        # floats byte-stream-split under LZ4, booleans run-length encoded: a quarter smaller
        # than the defaults and 2-4x faster to scan (benchmarks/README.md, "Edge pages")
        compression="lz4",
        use_byte_stream_split=floats,
        column_encoding=flags,
        use_dictionary=[n for n in schema.names if n not in floats and n not in flags],
    ) as writer:
        for start in starts:
            part = (
                table.slice(start, rows)
                if order is None
                else table.take(order[start : start + rows])
            )
            writer.write_table(part, row_group_size=rows)


# --------------------------------------------------------------------------- reading
class EdgeTableFile:
    """One stored edge table file, queried by row groups (see the module docstring).

    Args:
        path: the Parquet file (this layout or the one before it).
        batch_rows: rows per batch when rows are streamed (default: :data:`SCAN_BATCH_ROWS`).
    """

    def __init__(self, path: Path, batch_rows: int = SCAN_BATCH_ROWS) -> None:
        source = pa.memory_map(str(path))
        st = os.fstat(source.fileno())  # of the file opened, whatever the path is now
        key = (str(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        self.footer = _FOOTERS.get(key, lambda: _read_footer(source))
        self.file = pq.ParquetFile(source, metadata=self.footer.metadata)
        self.schema = self.file.schema_arrow
        self.batch_rows = batch_rows

    @property
    def layout(self) -> dict | None:
        """This layout's footer entry; None for files stored before it."""
        return self.footer.layout

    def counts(self, filters: list[Filter]) -> np.ndarray:
        """Matching rows of each row group, ``[row groups]``: statistics and footer counts
        first, the filters' columns only of row groups they cannot decide."""
        rows = self.footer.rows
        if self._unanswerable(filters):
            return np.zeros_like(rows)
        verdicts = self._verdicts(filters)  # [row groups, filters]
        decided = verdicts.min(axis=1, initial=ALL)
        counts = np.where(decided == ALL, rows, 0)
        if CANDIDATES in filters and self.layout is not None:
            rest = np.delete(verdicts, filters.index(CANDIDATES), axis=1).min(axis=1, initial=ALL)
            exact = (rest == ALL) & (decided != NONE)
            counts = np.where(exact, self.layout["candidates"], counts)
            decided = np.where(exact, ALL, decided)
        some = np.flatnonzero(decided == SOME)
        if len(some):
            counts[some] = self._read_counts(some, filters)
        return counts

    def page(
        self, filters: list[Filter], offset: int, limit: int, columns: list[str] | None = None
    ) -> tuple[int, pa.Table]:
        """``(total, rows)``: the number of matching rows and matches ``offset`` to
        ``offset + limit`` in the file's order; ``columns``: those of them the file has
        (default: all)."""
        counts = self.counts(filters)
        before = np.cumsum(counts) - counts  # matches in earlier row groups
        wanted = np.flatnonzero(
            (counts > 0) & (before < offset + limit) & (before + counts > offset)
        )
        pieces: list[pa.RecordBatch] = []
        if len(wanted):
            skip, need = offset - int(before[wanted[0]]), limit
            for batch in self._matches(wanted, filters, columns):
                piece = batch.slice(min(skip, batch.num_rows), need)
                skip = max(skip - batch.num_rows, 0)
                pieces.append(piece)
                need -= piece.num_rows
                if need == 0:
                    break
        schema = pa.schema([self.schema.field(c) for c in self._columns(columns)])
        return int(counts.sum()), pa.Table.from_batches(pieces, schema=schema)

    def scan(
        self, filters: list[Filter], columns: list[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Every matching row in the file's order (``columns`` as in :meth:`page`), in
        batches of at most ``batch_rows``; row groups the statistics rule out are not read."""
        if self._unanswerable(filters):
            return
        candidates = np.flatnonzero(self._verdicts(filters).min(axis=1, initial=ALL) != NONE)
        yield from self._matches(candidates, filters, columns)

    # --- internals ------------------------------------------------------------------

    def _unanswerable(self, filters: list[Filter]) -> bool:
        """A filter on a column the file lacks (tables stored before the confirmation
        have no confirm_q_value): that column is null everywhere, so nothing matches."""
        return any(col not in self.schema.names for col, _, _ in filters)

    def _verdicts(self, filters: list[Filter]) -> np.ndarray:
        """``[row groups, filters]`` of NONE / SOME / ALL from the row-group statistics."""
        trust_all = self.layout is not None  # NaN stored as null: min/max see every value
        out = np.full((len(self.footer.rows), len(filters)), SOME)
        for f, (col, op, value) in enumerate(filters):
            out[:, f] = self.footer.stats[col].verdicts(op, value, trust_all)
        return out

    def _read_counts(self, row_groups: np.ndarray, filters: list[Filter]) -> np.ndarray:
        """Matching rows of ``row_groups``, streaming only the filters' columns."""
        columns = sorted({col for col, _, _ in filters})
        batches = self.file.iter_batches(
            batch_size=self.batch_rows,
            row_groups=row_groups.tolist(),
            columns=columns,
            use_threads=False,
        )
        hits = [match_mask(batch, filters) for batch in batches]  # a byte per row
        rows = self.footer.rows[row_groups]
        return np.add.reduceat(np.concatenate(hits).astype(np.int64), np.cumsum(rows) - rows)

    def _columns(self, wanted: list[str] | None) -> list[str]:
        return (
            self.schema.names if wanted is None else [c for c in self.schema.names if c in wanted]
        )

    def _matches(
        self, row_groups: np.ndarray, filters: list[Filter], columns: list[str] | None
    ) -> Iterator[pa.RecordBatch]:
        """The matching rows of ``row_groups`` (``columns`` of them), batch by batch;
        only those columns and the filters' are decoded."""
        if not len(row_groups):
            return
        out = self._columns(columns)
        read = self._columns(out + [col for col, _, _ in filters])
        batches = self.file.iter_batches(
            batch_size=self.batch_rows,
            row_groups=row_groups.tolist(),
            columns=read,
            use_threads=False,
        )
        for batch in batches:
            yield batch.filter(pa.array(match_mask(batch, filters))).select(out)


def match_mask(rows: pa.Table | pa.RecordBatch, filters: list[Filter]) -> np.ndarray:
    """Bool ``[rows]``: every filter holds (null and NaN never do).

    Shapes:
        rows: ``[R]`` rows with every filtered column -> ``[R]``.
    """
    mask = np.ones(rows.num_rows, dtype=bool)
    for col, op, value in filters:
        column = rows.column(col)
        if pa.types.is_floating(column.type):  # in numpy: null -> NaN, which never holds
            mask &= _COMPARE_NUMPY[op](column.to_numpy(zero_copy_only=False), value)
        else:
            hit = _COMPARE[op](column, value)
            mask &= hit.fill_null(False).to_numpy(zero_copy_only=False)
    return mask


# ------------------------------------------------------------------ footers, parsed once
@dataclass(frozen=True)
class _ColumnStats:
    """One column's statistics over the row groups: ``lo``, ``hi`` (objects, None where
    not written), ``nulls`` (-1 where not written) and ``values`` (nulls included)."""

    lo: np.ndarray
    hi: np.ndarray
    nulls: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, md: pq.FileMetaData, column: int) -> _ColumnStats:
        lo, hi, nulls, values = [], [], [], []
        for r in range(md.num_row_groups):
            chunk = md.row_group(r).column(column)
            stats = chunk.statistics if chunk.is_stats_set else None
            known = stats is not None and stats.has_min_max
            lo.append(stats.min if known else None)
            hi.append(stats.max if known else None)
            nulls.append(stats.null_count if stats is not None and stats.has_null_count else -1)
            values.append(chunk.num_values)
        as_objects = lambda xs: np.array(xs + [None], dtype=object)[:-1]  # never 2-d
        return cls(as_objects(lo), as_objects(hi), np.array(nulls), np.array(values))

    def verdicts(self, op: str, value: Any, trust_all: bool) -> np.ndarray:
        """NONE / SOME / ALL per row group for ``column op value``.

        Parquet's min/max skip nulls (and NaN, where a writer stored NaN): "none" holds
        regardless, since neither ever matches; "all" needs no nulls and a writer that
        stored NaN as null (``trust_all``)."""
        out = np.where(self.nulls == self.values, NONE, SOME)  # all null: no match
        known = np.array([x is not None for x in self.lo], dtype=bool)
        lo, hi = self.lo[known], self.hi[known]
        if op == "==":
            none, every = (value < lo) | (value > hi), (lo == value) & (hi == value)
        elif op == ">=":
            none, every = hi < value, lo >= value
        else:
            none, every = lo > value, hi <= value
        every = every & trust_all & (self.nulls[known] == 0)
        out[known] = np.where(none.astype(bool), NONE, np.where(every.astype(bool), ALL, SOME))
        return out


@dataclass(frozen=True)
class _Footer:
    metadata: pq.FileMetaData
    layout: dict | None
    rows: np.ndarray  # [row groups]
    stats: dict[str, _ColumnStats]


def _read_footer(source: pa.NativeFile) -> _Footer:
    md = pq.read_metadata(source)
    meta = md.schema.to_arrow_schema().metadata or {}
    return _Footer(
        metadata=md,
        layout=json.loads(meta[LAYOUT_KEY]) if LAYOUT_KEY in meta else None,
        rows=np.array([md.row_group(r).num_rows for r in range(md.num_row_groups)]),
        stats={md.schema.column(i).name: _ColumnStats.of(md, i) for i in range(md.num_columns)},
    )


class _LRU:
    """A small thread-safe least-recently-used cache (of parsed footers: a 4M-row file's
    takes ~2 ms to parse, a page ~5 ms to serve)."""

    def __init__(self, size: int) -> None:
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key: tuple, load: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = load()
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


# keyed by path, device, inode, mtime and size: a replaced file is a new entry
_FOOTERS = _LRU(32)
