"""Parse and validate an uploaded observation table (CSV or Parquet).

The header must name every input and every output node of the graph, once each, and
nothing else; no row may have more fields than the header; every cell must be a finite
number (not a boolean); there must be at least one row.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter

import numpy as np
import pandas as pd

from gsnn_edges.service.errors import InvalidInputError

_PARQUET_MAGIC = b"PAR1"
_SHOW = 5  # how many offending columns/rows a message lists


def _fmt(items: list, what: str) -> str:
    shown = ", ".join(repr(i) if isinstance(i, str) else str(i) for i in items[:_SHOW])
    more = f" (and {len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return f"{what} {shown}{more}"


# Parquet physical types of numbers (and booleans, refused later with a clear message):
# each decodes to at most 8 bytes a cell, so the cell limit bounds the decoded size.
_NUMERIC_PARQUET = {"BOOLEAN", "INT32", "INT64", "FLOAT", "DOUBLE"}


def read_table(
    data: bytes, filename: str | None = None, max_cells: int = 50_000_000
) -> pd.DataFrame:
    """Read CSV or Parquet bytes (Parquet detected by magic bytes or extension).

    A Parquet file's footer (row and column counts, column types) is checked before
    anything is decoded, so a few kilobytes that declare a billion rows, or a dictionary
    of huge strings, cost nothing; a CSV's cells are counted after parsing (text cannot
    expand much).

    Raises:
        InvalidInputError: the bytes are neither a readable CSV nor Parquet file, a Parquet
            column is not numeric, or the table has more than ``max_cells`` cells (the
            message names the setting, ``GSNN_EDGES_MAX_TABLE_CELLS``).
    """
    name = (filename or "").lower()
    is_parquet = data[:4] == _PARQUET_MAGIC or name.endswith((".parquet", ".pq"))
    try:
        if is_parquet:
            _check_parquet_footer(data, max_cells)
            return pd.read_parquet(io.BytesIO(data))
        frame = _read_csv_strict(data)
        _check_cells(frame.shape[0], frame.shape[1], max_cells)
        return frame
    except InvalidInputError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise InvalidInputError("file is empty: it needs a header row and data rows") from exc
    except Exception as exc:  # any parser failure is bad input
        kind = "Parquet" if is_parquet else "CSV"
        raise InvalidInputError(f"could not read the file as {kind}: {exc}") from exc


def _check_cells(rows: int, cols: int, max_cells: int) -> None:
    if rows * cols > max_cells:
        msg = (
            f"the table has {rows} rows x {cols} columns = {rows * cols} cells, over the "
            f"limit of {max_cells} (setting GSNN_EDGES_MAX_TABLE_CELLS)"
        )
        raise InvalidInputError.at(["file"], msg)


def _check_parquet_footer(data: bytes, max_cells: int) -> None:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(io.BytesIO(data)).metadata  # the footer only
    _check_cells(meta.num_rows, meta.num_columns, max_cells)
    schema = meta.schema
    text = [
        schema.column(i).name
        for i in range(meta.num_columns)  # a loop over the file's own columns
        if schema.column(i).physical_type not in _NUMERIC_PARQUET
    ]
    if text:
        msg = f"{_fmt(text, 'columns')} are not stored as numbers; observations must be numbers"
        raise InvalidInputError(msg, [{"loc": ["file", c], "msg": msg} for c in text[:_SHOW]])


def _read_csv_strict(data: bytes) -> pd.DataFrame:
    """pandas' CSV reader without its silent repairs: the header keeps its names as
    written (pandas renames a repeated ``a`` to ``a.1``; :func:`validate_table` reports
    duplicates), and a row with more fields than the header (pandas turns the first field
    into an index and shifts the rest) is an error."""
    header = pd.read_csv(io.BytesIO(data), header=None, nrows=1, dtype=str, skipinitialspace=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(io.BytesIO(data), skipinitialspace=True, index_col=False)
        except pd.errors.ParserWarning as exc:  # only raised for rows longer than the header
            msg = f"a row has more fields than the header's {header.shape[1]} columns"
            raise InvalidInputError.at(["file"], msg) from exc
    frame.columns = [str(c) for c in header.iloc[0]]
    return frame


def _check_columns(frame: pd.DataFrame, expected: list[str]) -> None:
    present = [str(c) for c in frame.columns]
    counts, wanted = Counter(present), set(expected)  # built once: headers can be wide
    dupes = sorted(c for c, n in counts.items() if n > 1)
    missing = [c for c in expected if c not in counts]
    extra = [c for c in present if c not in wanted]
    errors = []
    if dupes:
        errors.append({"loc": ["file", "header"], "msg": _fmt(dupes, "duplicate columns")})
    if missing:
        errors.append(
            {"loc": ["file", "header"], "msg": _fmt(missing, "missing columns for graph nodes")}
        )
    if extra:
        errors.append(
            {
                "loc": ["file", "header"],
                "msg": _fmt(extra, "columns that are not input or output nodes of the graph"),
            }
        )
    if errors:
        raise InvalidInputError("; ".join(e["msg"] for e in errors), errors)


def _to_numeric(frame: pd.DataFrame) -> pd.DataFrame:
    flags = [str(c) for c, t in frame.dtypes.items() if pd.api.types.is_bool_dtype(t)]
    if flags:  # True/False would otherwise pass as 1.0/0.0
        msg = f"{_fmt(flags, 'boolean columns')}: observations must be numbers"
        raise InvalidInputError(msg, [{"loc": ["file", c], "msg": msg} for c in flags[:_SHOW]])
    numeric = frame.apply(pd.to_numeric, errors="coerce").astype("float64")
    bad = numeric.isna().to_numpy() & frame.notna().to_numpy()
    if not bad.any():
        return numeric
    rows, cols = np.nonzero(bad)
    errors = [
        {
            "loc": ["file", int(r) + 1, str(frame.columns[c])],
            "msg": f"non-numeric value {frame.iat[r, c]!r}",
        }
        for r, c in zip(rows[:_SHOW], cols[:_SHOW], strict=True)
    ]
    where = ", ".join(f"row {e['loc'][1]} column {e['loc'][2]!r}: {e['msg']}" for e in errors)
    more = f" (and {len(rows) - _SHOW} more)" if len(rows) > _SHOW else ""
    raise InvalidInputError(f"non-numeric cells: {where}{more}", errors)


def _check_finite(values: pd.DataFrame) -> None:
    bad = ~np.isfinite(values.to_numpy())
    if not bad.any():
        return
    cols = [str(c) for c in values.columns[bad.any(axis=0)]]
    rows = [int(r) + 1 for r in np.nonzero(bad.any(axis=1))[0]]
    msg = f"missing, NaN or infinite values in {_fmt(cols, 'columns')} at {_fmt(rows, 'rows')}"
    raise InvalidInputError(msg, [{"loc": ["file", c], "msg": msg} for c in cols[:_SHOW]])


def validate_table(frame: pd.DataFrame, inputs: list[str], outputs: list[str]) -> pd.DataFrame:
    """Check ``frame`` against a graph's input/output nodes and return it as float64.

    Rows are numbered from 1 (the first data row after the header).

    Returns:
        The table with columns ordered inputs then outputs. Shape ``[n_samples, n_in + n_out]``.

    Raises:
        InvalidInputError: naming the missing/extra columns or the bad rows and cells.
    """
    frame = frame.rename(columns=str)
    _check_columns(frame, list(inputs) + list(outputs))
    if len(frame) == 0:
        raise InvalidInputError(
            "the file has a header but zero data rows", [{"loc": ["file"], "msg": "zero rows"}]
        )
    frame = frame[list(inputs) + list(outputs)]
    values = _to_numeric(frame)
    _check_finite(values)
    return values.reset_index(drop=True)
