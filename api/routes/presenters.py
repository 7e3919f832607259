"""Row -> response model conversion shared by the routes."""

from __future__ import annotations

from api.schemas.datasets import DatasetOut
from api.schemas.graphs import GraphContent, GraphOut
from api.schemas.jobs import JobOut
from gsnn_edges.service.models import Dataset, Graph, Job


def graph_out(row: Graph, content: dict | None = None) -> GraphOut:
    return GraphOut(
        id=row.id,
        name=row.name,
        counts=row.counts,
        created_at=row.created_at,
        content=GraphContent(**content) if content is not None else None,
    )


def dataset_out(row: Dataset) -> DatasetOut:
    return DatasetOut(
        id=row.id, graph_id=row.graph_id, n_samples=row.n_samples, created_at=row.created_at
    )


def job_out(row: Job) -> JobOut:
    return JobOut(
        id=row.id,
        status=row.status,
        graph_id=row.graph_id,
        dataset_id=row.dataset_id,
        spec=row.spec,
        progress=row.progress,
        error=row.error,
        device=row.device,
        attempts=row.attempts,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
