"""Models of the plot routes' JSON: the network view's data, a graph's degree summary,
and the edges whose ROC curves a caller asks for."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CurvesIn(BaseModel):
    positive_edges: list[tuple[str, str]] = Field(
        min_length=1,
        max_length=100_000,
        description="Held-out true function -> function edges [src, dst].",
    )


class NetworkNode(BaseModel):
    name: str = Field(description="Function node name.")
    x: float = Field(description="Horizontal position in [0, 1] (topological level).")
    y: float = Field(description="Vertical position in [0, 1].")
    level: int = Field(description="Topological level in the job's graph.")
    top: bool = Field(description="An endpoint of a drawn candidate (else a neighbour).")


class NetworkCandidate(BaseModel):
    src: int = Field(description="Position of the source in nodes.")
    dst: int = Field(description="Position of the target in nodes.")
    score: float = Field(description="Edge score.")
    q_value: float | None = Field(description="Benjamini-Hochberg q-value.")
    rank: int = Field(description="Rank among the candidate pairs (1: best).")


class NetworkOut(BaseModel):
    nodes: list[NetworkNode] = Field(description="Drawn function nodes.")
    graph_edges: list[tuple[int, int]] = Field(
        description="Edges of the graph between drawn nodes (positions in nodes)."
    )
    candidates: list[NetworkCandidate] = Field(description="Top candidate pairs, best first.")
    layered: bool = Field(description="False when the graph has a cycle (no levels).")


class DegreeStats(BaseModel):
    """Summary of one degree over the nodes of one type (null when there is none)."""

    min: float | None = Field(description="Smallest degree.")
    median: float | None = Field(description="Median degree.")
    mean: float | None = Field(description="Mean degree.")
    max: float | None = Field(description="Largest degree.")


class TypeDegrees(BaseModel):
    nodes: int = Field(description="Nodes of this type.")
    isolated: int = Field(description="Nodes of this type without any edge.")
    in_: DegreeStats = Field(alias="in", description="In-degree summary.")
    out: DegreeStats = Field(description="Out-degree summary.")


class Hub(BaseModel):
    name: str = Field(description="Node name.")
    type: str = Field(description="input, function or output.")
    in_: int = Field(alias="in", description="Edges into the node.")
    out: int = Field(description="Edges out of the node.")


class DegreesOut(BaseModel):
    types: dict[str, TypeDegrees] = Field(description="Per node type (input, function, output).")
    hubs: list[Hub] = Field(description="The five nodes with most edges.")
