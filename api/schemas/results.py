"""Result models: scored edges, weights, metrics and evaluation."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from api.schemas.common import Page


class EdgeItem(BaseModel):
    src: str = Field(description="Source function node.")
    dst: str = Field(description="Destination function node.")
    score: float | None = Field(
        description="Edge score of the job's scorer (higher = more likely; null where the "
        "scorer cannot score the pair, e.g. latent targets under 'observed_baseline')."
    )
    p_value: float | None = Field(
        description="One-sided p-value of the scorer's screening test (null when not "
        "computed). Not an error rate on true edges: on simulated graphs most pairs with "
        "q < 0.1 are non-edges (README, 'Which scores to trust')."
    )
    q_value: float | None = Field(
        description="Benjamini-Hochberg q-value of p_value over all reported pairs."
    )
    has_edge: bool = Field(description="Whether the pair is already an edge of the graph.")
    confirmed: bool = Field(
        False, description="Whether the job's confirmation (spec confirm.top) tested the pair."
    )
    effect: float | None = Field(
        None,
        description="Confirmed pairs: mean held-out loss decrease the edge brings given the "
        "other confirmed candidates (standardised units); null otherwise.",
    )
    confirm_p_value: float | None = Field(
        None,
        description="Confirmed pairs: one-sided paired t-test p-value of effect > 0 on "
        "held-out rows; null otherwise (never a made-up 1.0).",
    )
    confirm_q_value: float | None = Field(
        None, description="Benjamini-Hochberg q-value of confirm_p_value over confirmed pairs."
    )


class EdgePage(Page):
    items: list[EdgeItem] = Field(description="Scored pairs, score descending.")


class WeightsOut(BaseModel):
    nodes: list[str] = Field(description="Function node names, index order of W.")
    weights: list[list[float | None]] = Field(
        description="W[i][j] scores nodes[i] -> nodes[j]; null where it is NaN or infinite."
    )


class MetricsOut(BaseModel):
    best_epoch: int | None = Field(None, description="Epoch of the kept checkpoint.")
    scorer: str | None = Field(None, description="The scorer behind the edge table.")
    validation: dict[str, Any] | None = Field(
        None,
        description="The edge table's auc, mrr, top@k, n_positives on the validation edges "
        "(or null).",
    )
    test: dict[str, Any] | None = Field(
        None, description="Held-out samples: loss, r2; 'edges': the edge table on test edges."
    )
    scorers: dict[str, Any] | None = Field(
        None,
        description="Every scorer of the run (hybrid, score_test, observed_baseline, "
        "magnitude): n_scored and its validation / test_edges metrics, so you can see "
        "whether the network adds anything over the observed-node baseline.",
    )
    score_test: dict[str, Any] | None = Field(
        None,
        description="Rows and checkpoint epoch of the one fixed-model pass the score test used.",
    )
    confirm: dict[str, Any] | None = Field(
        None,
        description="The confirmation stage (null when confirm.top is 0): top, n_confirmed, "
        "discoveries_q_0_1, train_rows, heldout_rows, seconds.",
    )
    history: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Per epoch: epoch, train_loss, aux_loss, val_auc, val_mrr, seconds.",
    )
    device: str | None = Field(None, description="Device used.")
    timing: dict[str, Any] | None = Field(None, description="Wall-clock timings (seconds).")


class EvaluateIn(BaseModel):
    positive_edges: list[tuple[str, str]] = Field(
        min_length=1, description="Held-out true function -> function edges [src, dst]."
    )
    top_k: list[Annotated[int, Field(ge=1)]] = Field(
        [1, 3, 5], min_length=1, max_length=20, description="k values for top@k (each >= 1)."
    )
