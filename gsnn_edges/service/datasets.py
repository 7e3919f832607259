"""Dataset service: validate an uploaded table against its graph and store it."""

from __future__ import annotations

from gsnn_edges.service import repository as repo
from gsnn_edges.service.context import ServiceContext, new_id
from gsnn_edges.service.dataset_table import read_table, validate_table
from gsnn_edges.service.errors import InvalidInputError, require_found, require_storable_text
from gsnn_edges.service.graphs import graph_content
from gsnn_edges.service.models import Dataset


def create_dataset(
    ctx: ServiceContext, tenant: str, graph_id: str, data: bytes, filename: str | None
) -> Dataset:
    """Parse, validate and store an observation table for ``graph_id``.

    Nothing is stored unless every check passes.

    Raises:
        InvalidInputError: unknown graph, unreadable file, bad header or cells.
    """
    require_storable_text(
        filename, ["body", "file", "filename"], Dataset.__table__.c.filename.type.length
    )
    with ctx.db.session() as session:
        graph = repo.get_graph(session, tenant, graph_id)
    if graph is None:
        raise InvalidInputError.at(["body", "graph_id"], f"graph {graph_id!r} not found")
    nodes = graph_content(ctx, graph_id)["nodes"]
    frame = read_table(data, filename, ctx.settings.max_table_cells)
    table = validate_table(frame, nodes["input"], nodes["output"])
    row = Dataset(
        id=new_id("ds"),
        tenant=tenant,
        graph_id=graph_id,
        n_samples=len(table),
        filename=filename,
    )
    key = ctx.store.dataset_key(row.id)
    ctx.store.write_parquet(key, table)
    with ctx.store.removed_on_error(key), ctx.db.session() as session:
        return repo.add_dataset(session, row)


def get_dataset(ctx: ServiceContext, tenant: str, dataset_id: str) -> Dataset:
    with ctx.db.session() as session:
        return require_found(
            repo.get_dataset(session, tenant, dataset_id), f"dataset {dataset_id!r}"
        )


def list_datasets(
    ctx: ServiceContext, tenant: str, limit: int, offset: int, graph_id: str | None = None
) -> tuple[list, int]:
    with ctx.db.session() as session:
        return repo.list_datasets(session, tenant, limit, offset, graph_id)
