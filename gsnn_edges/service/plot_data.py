"""What the plot endpoints draw: a job's training curves and its score histogram, as
small summaries (never the ``N^2`` edge table), tenant-scoped through the job and result
services. Rendering is the API's (``api.ui.svg``); nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from gsnn_edges.job_status import JobStatus
from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.jobs import get_job
from gsnn_edges.service.results import EdgeQuery, edge_page, load_metrics, result_key

# the per-epoch series of a training history, as named in metrics["history"] and progress
HISTORY_SERIES = ("train_loss", "aux_loss", "val_auc")


@dataclass(frozen=True)
class TrainingHistory:
    """Per-epoch values of a job.

    Attributes:
        status: the job's status.
        epochs: planned number of epochs (the x axis); None when unknown.
        rows: ``[{epoch, train_loss, aux_loss, val_auc}]`` (values may be None): every
            epoch once the job has succeeded (``metrics["history"]``), else only the last
            finished one (the job's ``progress``), or none before the first.
        best_epoch: epoch of the selected checkpoint, if known.
    """

    status: str
    epochs: int | None
    rows: list[dict]
    best_epoch: int | None

    @property
    def complete(self) -> bool:
        """Whether ``rows`` holds every epoch (the stored history of a succeeded job)."""
        return self.status == JobStatus.succeeded


def training_history(ctx: ServiceContext, tenant: str, job_id: str) -> TrainingHistory:
    """The training curves of a job in any status.

    Raises:
        NotFoundError: no such job for ``tenant``.
    """
    job = get_job(ctx, tenant, job_id)
    planned = (job.spec.get("training") or {}).get("epochs")
    if job.status == JobStatus.succeeded:
        metrics = load_metrics(ctx, tenant, job_id)
        rows = [_history_row(r) for r in metrics.get("history") or []]
        return TrainingHistory(job.status, len(rows) or planned, rows, metrics.get("best_epoch"))
    progress = job.progress or {}
    rows = [_history_row(progress)] if progress.get("epoch") else []
    epochs = progress.get("epochs") or planned
    return TrainingHistory(job.status, epochs, rows, progress.get("best_epoch"))


def _history_row(record: dict) -> dict:
    return {"epoch": record.get("epoch"), **{k: record.get(k) for k in HISTORY_SERIES}}


@dataclass(frozen=True)
class ScoreHistogram:
    """Histogram of a job's edge scores, split by q-value.

    Shapes:
        edges: [bins + 1] bin edges (ascending).
        significant: [bins] pairs with ``q_value < q_threshold`` per bin.
        other: [bins] the remaining scored pairs per bin.

    Attributes:
        threshold: lowest score of a pair with ``q_value < q_threshold`` (None: no such pair).
        n_unscored: pairs without a score (NaN), not in any bin.
        top: up to three highest-scored pairs, ``[(src, dst, score)]``.
    """

    edges: np.ndarray
    significant: np.ndarray
    other: np.ndarray
    threshold: float | None
    q_threshold: float
    n_unscored: int
    candidates_only: bool
    top: list[tuple[str, str, float]]


def histogram_counts(
    score: np.ndarray, q_value: np.ndarray, bins: int, q_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """``(edges, significant, other, threshold)`` of :class:`ScoreHistogram` from the raw
    columns (NaN: unscored / no q-value); one vectorised pass per split.

    Shapes:
        score, q_value: [P] one entry per pair.
    """
    scored = np.isfinite(score)
    significant = scored & (q_value < q_threshold)  # NaN q compares False
    lo, hi = (score[scored].min(), score[scored].max()) if scored.any() else (0.0, 1.0)
    edges = np.histogram_bin_edges(score[scored], bins=bins, range=(lo, hi))
    sig, _ = np.histogram(score[significant], bins=edges)
    rest, _ = np.histogram(score[scored & ~significant], bins=edges)
    threshold = float(score[significant].min()) if significant.any() else None
    return edges, sig, rest, threshold


def score_histogram(
    ctx: ServiceContext,
    tenant: str,
    job_id: str,
    bins: int = 40,
    q_threshold: float = 0.1,
    candidates_only: bool = True,
) -> ScoreHistogram:
    """Histogram of the scores in a succeeded job's stored edge table (three columns read,
    the table itself never leaves the server).

    Raises:
        NotFoundError, ResultNotReadyError: as :func:`~gsnn_edges.service.results.result_key`.
    """
    path = ctx.store.path(result_key(ctx, tenant, job_id, "edges"))
    table = pq.read_table(path, columns=["score", "q_value", "has_edge"])
    score = table["score"].to_numpy(zero_copy_only=False).astype(np.float64)
    q_value = table["q_value"].to_numpy(zero_copy_only=False).astype(np.float64)
    if candidates_only:
        keep = ~table["has_edge"].to_numpy(zero_copy_only=False).astype(bool)
        score, q_value = score[keep], q_value[keep]
    edges, sig, rest, threshold = histogram_counts(score, q_value, bins, q_threshold)
    _, page = edge_page(ctx, tenant, job_id, EdgeQuery(candidates_only=candidates_only), 0, 3)
    top = [(r["src"], r["dst"], r["score"]) for r in page if _finite(r["score"])]
    n_unscored = int(np.count_nonzero(~np.isfinite(score)))
    return ScoreHistogram(
        edges, sig, rest, threshold, q_threshold, n_unscored, candidates_only, top
    )


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))
