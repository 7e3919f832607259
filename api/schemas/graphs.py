"""Graph request/response models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import Page


class GraphNodes(BaseModel):
    """Node names per type; names are unique across all types."""

    model_config = ConfigDict(extra="forbid")

    input: list[str] = Field(description="Observed input node names (fed into the model).")
    function: list[str] = Field(min_length=1, description="Latent function node names.")
    output: list[str] = Field(description="Observed output node names (predicted).")


class GraphCreate(BaseModel):
    """A prior-knowledge graph. Edge types are inferred from the endpoint node types."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=500, description="Optional display name.")
    nodes: GraphNodes = Field(description="Node names per type.")
    edges: list[tuple[str, str]] = Field(
        description="Directed [src, dst] pairs: input->function, function->function or "
        "function->output."
    )


class EdgeCounts(BaseModel):
    input_function: int = Field(description="Number of input -> function edges.")
    function_function: int = Field(description="Number of function -> function edges.")
    function_output: int = Field(description="Number of function -> output edges.")


class GraphCounts(BaseModel):
    input: int = Field(description="Number of input nodes.")
    function: int = Field(description="Number of function nodes.")
    output: int = Field(description="Number of output nodes.")
    edges: EdgeCounts = Field(description="Edge counts per edge type.")


class GraphContent(BaseModel):
    nodes: GraphNodes = Field(description="Node names per type.")
    edges: list[tuple[str, str]] = Field(description="All edges as [src, dst].")


class GraphOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the database row
    id: str = Field(description="Opaque graph id.")
    name: str | None = Field(description="Display name, if given.")
    counts: GraphCounts = Field(description="Node and edge counts.")
    created_at: datetime = Field(description="Creation time (UTC).")
    content: GraphContent | None = Field(
        None, description="Nodes and edges; only with ?include=content."
    )


class GraphList(Page):
    items: list[GraphOut] = Field(description="Graphs on this page, oldest first.")
