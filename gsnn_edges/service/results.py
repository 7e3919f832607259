"""Result service: scored edges, W, metrics and evaluation of a succeeded job."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gsnn_edges.edge_columns import CSV_QUOTED_START, EDGE_COLUMNS, UNCONFIRMED
from gsnn_edges.job_status import JobStatus
from gsnn_edges.service.context import ServiceContext
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
    return [ctx.store.job_key(job_id, w, job.result_attempt) for w in what]


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


def query_edges(ctx: ServiceContext, tenant: str, job_id: str, q: EdgeQuery) -> pd.DataFrame:
    """Filtered edge table (columns :data:`EDGE_COLUMNS`), sorted by score descending.

    The stored table comes from ``inference.edge_table`` (already sorted, with p/q-values)
    and a boolean mask keeps row order, so nothing is re-sorted; callers slice by position.
    """
    frame = ctx.store.read_parquet(result_key(ctx, tenant, job_id, "edges"))
    frame = frame.rename(columns={"src_func": "src", "dst_func": "dst"})
    frame = frame.assign(**{k: v for k, v in UNCONFIRMED.items() if k not in frame.columns})
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


def neutralise_formulas(names: pd.Series) -> pd.Series:
    """Node names as CSV cells a spreadsheet shows as text: a leading ``'`` before any
    name starting with one of :data:`~gsnn_edges.edge_columns.CSV_QUOTED_START` (OWASP's
    CSV-injection rule, plus ``'`` itself). Works on the categories, not per row."""
    cat = names.astype("category")  # the stored tables' columns already are
    text = cat.cat.categories.astype(str)
    safe = np.where(text.str.contains(f"^[{CSV_QUOTED_START}]"), "'" + text, text)
    return pd.Series(safe[cat.cat.codes.to_numpy()], index=names.index, dtype=object)


def edges_csv_chunks(frame: pd.DataFrame, chunk_rows: int = 50_000) -> Iterator[bytes]:
    """CSV of ``frame`` in chunks (header first) for a streamed response, node names
    neutralised against formula injection (:func:`neutralise_formulas`)."""
    frame = frame.assign(
        src=neutralise_formulas(frame["src"]), dst=neutralise_formulas(frame["dst"])
    )
    yield (",".join(frame.columns) + "\n").encode()
    for start in range(0, len(frame), chunk_rows):
        part = frame.iloc[start : start + chunk_rows]
        yield part.to_csv(index=False, header=False).encode()


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
