"""Result service: scored edges, W, metrics and evaluation of a succeeded job."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gsnn_edges.edge_columns import COLUMN_DEFAULTS, CSV_QUOTED_START, EDGE_COLUMNS
from gsnn_edges.job_status import JobStatus
from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.edge_store import CANDIDATES, EdgeTableFile, Filter
from gsnn_edges.service.errors import InvalidInputError, ResultNotReadyError
from gsnn_edges.service.jobs import get_job
from gsnn_edges.service.models import Job


@dataclass(frozen=True)
class EdgeQuery:
    """Filters of ``GET /v1/jobs/{id}/edges``."""

    src: str | None = None
    dst: str | None = None
    min_score: float | None = None
    max_q_value: float | None = None
    max_confirm_q_value: float | None = None
    candidates_only: bool = True


def result_key(ctx: ServiceContext, tenant: str, job_id: str, what: str) -> str:
    """Artifact key of one published result file of a succeeded job.

    Raises:
        NotFoundError, ResultNotReadyError: see :func:`require_succeeded`.
    """
    return result_keys(ctx, tenant, job_id, what)[0]


def result_keys(ctx: ServiceContext, tenant: str, job_id: str, *what: str) -> list[str]:
    """:func:`result_key` of several files, with one look-up of the job."""
    job = require_succeeded(ctx, tenant, job_id)
    return [published_key(ctx, job, w) for w in what]


def published_key(ctx: ServiceContext, job: Job, what: str) -> str:
    """Artifact key of result file ``what`` of ``job``'s published attempt."""
    return ctx.store.job_key(job.id, what, job.result_attempt)


def require_succeeded(ctx: ServiceContext, tenant: str, job_id: str) -> Job:
    """The job; raises NotFoundError, or ResultNotReadyError unless it succeeded."""
    job = get_job(ctx, tenant, job_id)
    if job.status != JobStatus.succeeded:
        hint = (
            "poll GET /v1/jobs/{id} until it has"
            if job.status in (JobStatus.queued, JobStatus.running)
            else ("it will not produce results; see its error")
        )
        raise ResultNotReadyError(
            f"job {job_id!r} is {job.status}; results exist only once it has succeeded ({hint})"
        )
    return job


# served column -> its name in the stored table (the library's edge_table names)
STORED_NAMES = {"src": "src_func", "dst": "dst_func"}
SERVED_NAMES = {v: k for k, v in STORED_NAMES.items()}
STORED_COLUMNS = tuple(STORED_NAMES.get(c, c) for c in EDGE_COLUMNS)


def _filters(q: EdgeQuery) -> list[Filter]:
    """``q`` as stored-table filters (:mod:`~gsnn_edges.service.edge_store`)."""
    given = [
        ("src_func", "==", q.src),
        ("dst_func", "==", q.dst),
        ("score", ">=", q.min_score),
        ("q_value", "<=", q.max_q_value),
        ("confirm_q_value", "<=", q.max_confirm_q_value),
    ]
    filters = [f for f in given if f[2] is not None]
    return [*filters, CANDIDATES] if q.candidates_only else filters


def _edge_file(ctx: ServiceContext, tenant: str, job_id: str, q: EdgeQuery) -> Path:
    """The stored sort order that answers ``q`` with the least reading: by source or by
    destination when ``q`` names one, else by score (also for jobs stored before the
    other orders existed)."""
    what = "edges_by_src" if q.src is not None else "edges_by_dst" if q.dst is not None else "edges"
    main, ordered = result_keys(ctx, tenant, job_id, "edges", what)
    path = ctx.store.path(ordered)
    return path if path.exists() else ctx.store.path(main)


def edge_page(
    ctx: ServiceContext, tenant: str, job_id: str, q: EdgeQuery, offset: int, limit: int
) -> tuple[int, list[dict]]:
    """``(total, items)``: the number of pairs matching ``q`` and matches ``offset`` to
    ``offset + limit`` as dicts of :data:`EDGE_COLUMNS` (null as None), score descending,
    in the stored table's order (``inference.edge_table``'s: NaN scores last, ties as
    stored).

    Reads only the row groups the page and the count need (``edge_store``), not the table.
    """
    return edge_page_of(_edge_file(ctx, tenant, job_id, q), q, offset, limit)


def edge_page_of(path: Path, q: EdgeQuery, offset: int, limit: int) -> tuple[int, list[dict]]:
    """:func:`edge_page` of the stored table at ``path``, already looked up (a caller that
    also reads other files of the job looks the job up once)."""
    total, rows = EdgeTableFile(path).page(_filters(q), offset, limit, list(STORED_COLUMNS))
    return total, served_items(rows)


def edges_csv(ctx: ServiceContext, tenant: str, job_id: str, q: EdgeQuery) -> Iterator[bytes]:
    """CSV of every pair matching ``q`` (header first), streamed batch by batch; node
    names neutralised against formula injection (:func:`neutralise_formulas`).

    The job is looked up now (NotFoundError, ResultNotReadyError raise here, before a
    response starts); the rows are read as the iterator is consumed.
    """
    source = EdgeTableFile(_edge_file(ctx, tenant, job_id, q))
    return _csv_chunks(source.scan(_filters(q), list(STORED_COLUMNS)))


def _csv_chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    yield (",".join(EDGE_COLUMNS) + "\n").encode()
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    for batch in batches:
        out = io.BytesIO()
        # Arrow formats and writes without holding the GIL (pandas' to_csv held it for the
        # whole export: benchmarks/README.md, "Edge pages and load")
        pacsv.write_csv(served_table(batch), out, options)
        yield out.getvalue()


def served_items(rows: pa.Table) -> list[dict]:
    """Stored rows as JSON items: :data:`EDGE_COLUMNS` keys, the
    :data:`~gsnn_edges.edge_columns.COLUMN_DEFAULTS` where a table lacks a column (one
    replica; stored before the confirmation) (no pandas: a page is a few rows)."""
    missing = {k: v for k, v in COLUMN_DEFAULTS.items() if k not in rows.column_names}
    names = [SERVED_NAMES.get(c, c) for c in rows.column_names]
    return [{**item, **missing} for item in rows.rename_columns(names).to_pylist()]


def served_table(rows: pa.Table | pa.RecordBatch) -> pa.Table:
    """Stored rows as a table of :data:`EDGE_COLUMNS` (the CSV export's): the
    :data:`~gsnn_edges.edge_columns.COLUMN_DEFAULTS` where a column is missing (NaN as
    null), node names as text neutralised by :func:`neutralise_formulas`."""
    n = rows.num_rows
    columns = []
    for name in EDGE_COLUMNS:
        stored = STORED_NAMES.get(name, name)
        if stored not in rows.column_names:
            default = COLUMN_DEFAULTS[name]
            missing = pa.nulls(n, pa.float64()) if isinstance(default, float) else None
            columns.append(missing if missing is not None else pa.array([default] * n))
        elif name in STORED_NAMES:
            columns.append(neutralise_formulas(rows.column(stored)))
        elif pa.types.is_floating(rows.schema.field(stored).type):
            # an empty cell, never "nan" (tables stored before NaN became null hold NaN)
            col = rows.column(stored)
            columns.append(pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col))
        else:
            columns.append(rows.column(stored))
    return pa.table(columns, names=list(EDGE_COLUMNS))


def neutralise_formulas(names: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Node names as CSV cells a spreadsheet shows as text: a leading ``'`` before any
    name starting with one of :data:`~gsnn_edges.edge_columns.CSV_QUOTED_START` (OWASP's
    CSV-injection rule, plus ``'`` itself). Works on the dictionary of a stored
    (dictionary-encoded) column, not per row; returns plain strings."""
    if isinstance(names, pa.ChunkedArray):
        names = names.combine_chunks()
    if not pa.types.is_dictionary(names.type):
        names = pc.dictionary_encode(names)
    text = names.dictionary.cast(pa.string())
    risky = pc.match_substring_regex(text, f"^[{CSV_QUOTED_START}]")
    safe = pc.if_else(risky, pc.binary_join_element_wise("'", text, ""), text)
    return pa.DictionaryArray.from_arrays(names.indices, safe).dictionary_decode()


def load_weights(ctx: ServiceContext, tenant: str, job_id: str) -> tuple[list[str], np.ndarray]:
    """Function node names and ``W`` (``[N, N]``, ``W[i, j]`` scores ``nodes[i] -> nodes[j]``)
    for the JSON answer.

    Raises:
        InvalidInputError: ``N^2`` is over ``GSNN_EDGES_MAX_JSON_WEIGHTS`` (checked from the
            node list, before W is read): the client should fetch ``?format=npy``.
    """
    nodes_key, weights_key = result_keys(ctx, tenant, job_id, "nodes", "weights")
    nodes = ctx.store.read_json(nodes_key)
    limit = ctx.settings.max_json_weights
    if len(nodes) ** 2 > limit:
        raise InvalidInputError.at(
            ["query", "format"],
            f"W has {len(nodes)} x {len(nodes)} = {len(nodes) ** 2} entries, over the JSON "
            f"limit of {limit} (setting GSNN_EDGES_MAX_JSON_WEIGHTS): fetch ?format=npy",
        )
    return nodes, ctx.store.read_npy(weights_key)


def weights_npy_bytes(ctx: ServiceContext, tenant: str, job_id: str) -> bytes:
    return ctx.store.read_bytes(result_key(ctx, tenant, job_id, "weights"))


def load_metrics(ctx: ServiceContext, tenant: str, job_id: str) -> dict:
    return ctx.store.read_json(result_key(ctx, tenant, job_id, "metrics"))


def evaluate(
    ctx: ServiceContext, tenant: str, job_id: str, positive_edges: list, top_k: list[int]
) -> dict:
    """Score held-out ``positive_edges`` against the stored edge table.

    Raises:
        InvalidInputError: an edge names an unknown function node.
    """
    from gsnn_edges.metrics import edge_table_metrics

    table = ctx.store.read_parquet(result_key(ctx, tenant, job_id, "edges"))
    try:
        _, summary = edge_table_metrics(table, positive_edges, top_k=tuple(top_k))
    except ValueError as exc:
        raise InvalidInputError.at(["body", "positive_edges"], str(exc)) from exc
    return summary
