"""Graph service: create, fetch and list prior-knowledge graphs."""

from __future__ import annotations

from typing import Any

from gsnn_edges.service import repository as repo
from gsnn_edges.service.context import ServiceContext, new_id
from gsnn_edges.service.errors import InvalidInputError, require_found, require_storable_text
from gsnn_edges.service.models import Graph


def create_graph(ctx: ServiceContext, tenant: str, name: str | None, content: dict) -> Graph:
    """Validate a graph, store its JSON, then record it.

    Args:
        content: ``{"nodes": {type: [names]}, "edges": [[src, dst], ...]}``.

    Raises:
        InvalidInputError: the graph is malformed (message names the node or edge).
    """
    from gsnn_edges.graph import GraphValidationError, GSNNGraph

    require_storable_text(name, ["body", "name"], Graph.__table__.c.name.type.length)
    try:
        graph = GSNNGraph.from_json(content)
    except GraphValidationError as exc:
        raise InvalidInputError.at(["body"], str(exc)) from exc
    row = Graph(id=new_id("gr"), tenant=tenant, name=name, counts=graph.counts())
    key = ctx.store.graph_key(row.id)
    ctx.store.write_json(key, graph.to_json())
    with ctx.store.removed_on_error(key), ctx.db.session() as session:
        return repo.add_graph(session, row)


def get_graph(ctx: ServiceContext, tenant: str, graph_id: str) -> Graph:
    """Raises NotFoundError when absent or owned by another tenant."""
    with ctx.db.session() as session:
        return require_found(repo.get_graph(session, tenant, graph_id), f"graph {graph_id!r}")


def graph_content(ctx: ServiceContext, graph_id: str) -> dict[str, Any]:
    """Stored ``{"nodes", "edges"}`` JSON of a graph."""
    return ctx.store.read_json(ctx.store.graph_key(graph_id))


def list_graphs(ctx: ServiceContext, tenant: str, limit: int, offset: int) -> tuple[list, int]:
    with ctx.db.session() as session:
        return repo.list_graphs(session, tenant, limit, offset)
