"""What the plot endpoints draw: a job's training curves, its score histogram, ``W`` in
topological order and the ROC / precision-recall curves of its validation edges, as
small summaries (never the ``N^2`` edge table), tenant-scoped through the job and result
services. Rendering is the API's (``api.ui``); nothing here imports torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from gsnn_edges.graph import pair_indices
from gsnn_edges.job_status import JobStatus
from gsnn_edges.metrics import roc_curve
from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.errors import ConflictError, InvalidInputError
from gsnn_edges.service.graphs import graph_content
from gsnn_edges.service.jobs import epoch_history, get_job
from gsnn_edges.service.plot_graph import function_edge_index, topological_rank
from gsnn_edges.service.results import (
    EdgeQuery,
    edge_page_of,
    load_metrics,
    require_succeeded,
    result_key,
    result_keys,
)
from gsnn_edges.spec import MAX_TRAINING_EPOCHS

# the per-epoch series of a training history, as named in metrics["history"] and progress
HISTORY_SERIES = ("train_loss", "aux_loss", "val_auc")


@dataclass(frozen=True)
class TrainingHistory:
    """Per-epoch values of a job.

    Attributes:
        status: the job's status.
        epochs: planned number of epochs (the x axis); None when unknown.
        rows: ``[{epoch, train_loss, aux_loss, val_auc}]`` (values may be None): every
            epoch of the run once the job has succeeded (``metrics["history"]``), else
            every finished epoch of its current attempt so far (the job's epoch
            history; replica 0's for a job with replicas), or none before the first.
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
    """The training curves of a job in any status, live while it trains.

    Raises:
        NotFoundError: no such job for ``tenant``.
    """
    job = get_job(ctx, tenant, job_id)
    planned = (job.spec.get("training") or {}).get("epochs")
    if job.status == JobStatus.succeeded:
        metrics = load_metrics(ctx, tenant, job_id)
        rows = [_history_row(r) for r in metrics.get("history") or []]
        return TrainingHistory(job.status, len(rows) or planned, rows, metrics.get("best_epoch"))
    _, records = epoch_history(ctx, tenant, job_id, limit=MAX_TRAINING_EPOCHS)
    rows = [_history_row(r) for r in records]
    last = records[-1] if records else (job.progress or {})
    return TrainingHistory(job.status, last.get("epochs") or planned, rows, last.get("best_epoch"))


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
    _, page = edge_page_of(path, EdgeQuery(candidates_only=candidates_only), 0, 3)
    top = [(r["src"], r["dst"], r["score"]) for r in page if _finite(r["score"])]
    n_unscored = int(np.count_nonzero(~np.isfinite(score)))
    return ScoreHistogram(
        edges, sig, rest, threshold, q_threshold, n_unscored, candidates_only, top
    )


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))


# ------------------------------------------------------------------------ W heatmap
# W is drawn cell by cell up to this many function nodes (250,000 cells); beyond, the
# dashboard lists the top pairs instead (GET /v1/jobs/{id}/edges)
MAX_HEATMAP_NODES = 500


@dataclass(frozen=True)
class WeightsHeatmap:
    """A job's ``W`` with rows and columns in a topological order of its graph.

    Shapes:
        weights: [N, N] ``W[order][:, order]``: row ``i`` -> column ``j``.
        level_starts: [L] position in ``nodes`` where each topological level starts.
        edges: [2, E] the graph's function -> function edges, as positions in ``nodes``.

    Attributes:
        nodes: function node names in drawing order.
        ordered: False when the graph has a cycle (``nodes`` then keep W's order).
    """

    nodes: list[str]
    weights: np.ndarray
    level_starts: np.ndarray
    edges: np.ndarray
    ordered: bool


def weights_heatmap(
    ctx: ServiceContext, tenant: str, job_id: str, max_nodes: int = MAX_HEATMAP_NODES
) -> WeightsHeatmap:
    """``W`` of a succeeded job ordered level by level (sources first), for a heatmap.

    Raises:
        NotFoundError, ResultNotReadyError: as :func:`~gsnn_edges.service.results.result_key`.
        InvalidInputError: more than ``max_nodes`` function nodes (checked before W is read).
    """
    job = require_succeeded(ctx, tenant, job_id)
    key = lambda what: ctx.store.job_key(job_id, what, job.result_attempt)
    nodes = ctx.store.read_json(key("nodes"))
    if len(nodes) > max_nodes:
        raise InvalidInputError.at(
            ["path", "job_id"],
            f"job {job_id!r} has {len(nodes):,} function nodes; the heatmap draws W for up "
            f"to {max_nodes} (its top pairs: GET /v1/jobs/{job_id}/edges; all of W: "
            f"GET /v1/jobs/{job_id}/weights?format=npy)",
        )
    weights = ctx.store.read_npy(key("weights"))
    names, edges = function_edge_index(graph_content(ctx, job.graph_id))
    at = pd.Index(nodes).get_indexer(names)  # graph node -> row of W
    rank = topological_rank(len(names), edges, names)
    ordered = rank is not None and len(names) == len(nodes) and bool((at >= 0).all())
    if ordered:
        order, level = at[np.argsort(rank, kind="stable")], np.sort(rank, kind="stable")
        position = np.empty(len(nodes), np.int64)
        position[order] = np.arange(len(nodes))
        graph_edges = position[at[edges]]
    else:
        order, level = np.arange(len(nodes)), np.zeros(len(nodes), np.int64)
        graph_edges = np.zeros((2, 0), np.int64)
    starts = np.flatnonzero(np.r_[True, level[1:] != level[:-1]]) if len(level) else level
    names_in_order = np.asarray(nodes, dtype=object)[order].tolist()
    return WeightsHeatmap(
        names_in_order, weights[np.ix_(order, order)], starts, graph_edges, ordered
    )


# ------------------------------------------------------------ ROC and precision-recall
@dataclass(frozen=True)
class RankingCurves:
    """ROC and precision-recall curves of known positive pairs against the other
    candidate pairs, one point per distinct score threshold where the curves turn
    (points between two turns lie on the segment joining them, so the drawing is exact).

    Shapes:
        fpr, tpr, precision: [T] (``recall`` is ``tpr``), from threshold +inf down.

    Attributes:
        auc: area under the ROC curve (ties count 1/2, as :func:`gsnn_edges.metrics.roc_auc`).
        average_precision: ``sum_k (R_k - R_{k-1}) P_k`` over the thresholds.
        n_positives, n_negatives: pairs of each class ranked.
        n_left_out: positives that are not candidate pairs of the table (in the graph).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    precision: np.ndarray
    auc: float
    average_precision: float
    n_positives: int
    n_negatives: int
    n_left_out: int = 0


def ranking_curves(scores: np.ndarray, labels: np.ndarray) -> RankingCurves:
    """ROC and precision-recall of ``scores`` for ``labels`` (NaN scores rank last).

    Shapes:
        scores, labels: [M].

    Raises:
        ValueError: ``labels`` has no positive or no negative.
    """
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if not n_pos or not n_neg:
        raise ValueError(f"need positives and negatives, got {n_pos} and {n_neg}")
    fpr, tpr = roc_curve(scores, labels)  # [T + 1], from (0, 0)
    tps, fps = np.rint(tpr * n_pos), np.rint(fpr * n_neg)
    with np.errstate(invalid="ignore"):
        precision = np.where(tps + fps > 0, tps / (tps + fps), 1.0)
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    average_precision = float(np.sum(np.diff(tpr) * precision[1:]))
    # turns: the first and last point, and both ends of every step in tps
    step = np.flatnonzero(np.diff(tps) > 0)
    keep = np.unique(np.r_[0, step, step + 1, len(tps) - 1])
    return RankingCurves(
        fpr[keep], tpr[keep], precision[keep], auc, average_precision, n_pos, n_neg
    )


def validation_curves(ctx: ServiceContext, tenant: str, job_id: str) -> RankingCurves:
    """:func:`edge_curves` of a succeeded job's validation edges (the metrics'
    ``validation_edges``: given, or hidden by ``validation.holdout_fraction``).

    Raises:
        NotFoundError, ResultNotReadyError: as :func:`~gsnn_edges.service.results.result_key`.
        ConflictError: the job has no validation edge among its candidate pairs.
    """
    keys = result_keys(ctx, tenant, job_id, "metrics", "nodes", "edges")
    positives = ctx.store.read_json(keys[0]).get("validation_edges") or []
    if not positives:
        raise ConflictError(
            f"job {job_id!r} has no validation edges (spec validation.edges or "
            "validation.holdout_fraction): there is nothing to draw ROC curves against; "
            "POST your own held-out edges to this path instead"
        )
    return _curves(ctx, job_id, keys[1], keys[2], positives, ["metrics", "validation_edges"])


def edge_curves(ctx: ServiceContext, tenant: str, job_id: str, positives: list) -> RankingCurves:
    """:func:`ranking_curves` of known true edges ``positives`` among a succeeded job's
    candidate pairs, read from the stored table (four columns; the table never leaves the
    server). Positives that are edges of the graph are left out (``n_left_out``).

    Raises:
        NotFoundError, ResultNotReadyError: as :func:`~gsnn_edges.service.results.result_key`.
        InvalidInputError: an edge names an unknown function node (at ``body.positive_edges``).
        ConflictError: no positive is a candidate pair, or every candidate is a positive.
    """
    nodes_key, edges_key = result_keys(ctx, tenant, job_id, "nodes", "edges")
    return _curves(ctx, job_id, nodes_key, edges_key, positives, ["body", "positive_edges"])


def _curves(
    ctx: ServiceContext, job_id: str, nodes_key: str, edges_key: str, positives: list, loc: list
) -> RankingCurves:
    """:func:`edge_curves` from the job's published node list and edge table."""
    nodes = ctx.store.read_json(nodes_key)
    try:
        pos = pair_indices(positives, nodes, "positive edge")
    except ValueError as exc:
        raise InvalidInputError.at(loc, str(exc)) from exc
    # four numeric columns in the stored order (score descending: no sort needed below)
    columns = ["src_idx", "dst_idx", "score", "has_edge"]
    table = pq.read_table(ctx.store.path(edges_key), columns=columns)
    candidate = ~table["has_edge"].to_numpy(zero_copy_only=False)
    n = len(nodes)
    is_positive = np.zeros(n * n, dtype=bool)
    is_positive[pos[:, 0] * n + pos[:, 1]] = True
    pair = table["src_idx"].to_numpy() * n + table["dst_idx"].to_numpy()
    labels = is_positive[pair[candidate]]
    score = table["score"].to_numpy(zero_copy_only=False).astype(np.float64)[candidate]
    try:
        curves = ranking_curves(score, labels)
    except ValueError as exc:
        raise ConflictError(
            f"job {job_id!r}: the edges cannot be ranked among its candidate pairs ({exc}; "
            "edges of the graph are not candidates)"
        ) from exc
    left_out = len(np.unique(pos, axis=0)) - curves.n_positives
    return dataclasses.replace(curves, n_left_out=left_out)
