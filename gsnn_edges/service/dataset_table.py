"""Parse and validate an uploaded observation table (CSV or Parquet).

The header must name every input and every output node of the graph and nothing else;
every cell must be a finite number; there must be at least one row.
"""

from __future__ import annotations

import io
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


def read_table(data: bytes, filename: str | None = None) -> pd.DataFrame:
    """Read CSV or Parquet bytes (Parquet detected by magic bytes or extension).

    Raises:
        InvalidInputError: the bytes are neither a readable CSV nor Parquet file.
    """
    name = (filename or "").lower()
    is_parquet = data[:4] == _PARQUET_MAGIC or name.endswith((".parquet", ".pq"))
    try:
        if is_parquet:
            return pd.read_parquet(io.BytesIO(data))
        return pd.read_csv(io.BytesIO(data), skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise InvalidInputError("file is empty: it needs a header row and data rows") from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure is bad input
        kind = "Parquet" if is_parquet else "CSV"
        raise InvalidInputError(f"could not read the file as {kind}: {exc}") from exc


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
