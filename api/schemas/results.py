"""Result models: scored edges, weights, metrics and evaluation."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import Page
from api.schemas.jobs import EpochRecord


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
        False,
        description="Whether the job's confirmation (spec confirm.top) tested the pair: the "
        "top candidates, less any whose reverse ranks above it.",
    )
    effect: float | None = Field(
        None,
        description="Confirmed pairs: mean held-out loss decrease the edge brings given the "
        "other confirmed candidates (standardised units); null otherwise.",
    )
    confirm_p_value: float | None = Field(
        None,
        description="Confirmed pairs: one-sided paired t-test p-value of effect > "
        "metrics confirm.effect_margin on held-out rows; null otherwise (never a made-up "
        "1.0).",
    )
    confirm_q_value: float | None = Field(
        None, description="Benjamini-Hochberg q-value of confirm_p_value over confirmed pairs."
    )
    equivalents: int | None = Field(
        None,
        description="Confirmed pairs: how many other sources would bring dst the same new "
        "inputs as src does (their inputs in the graph, less dst's, are src's), so that no "
        "held-out test can tell their edge from this one: with equivalents > 0 a discovery "
        "reads 'src -> dst or an equivalent is missing' (metrics confirm.equivalents names "
        "them); null otherwise.",
    )
    stability: float | None = Field(
        None,
        description="Jobs with replicas > 1: share of replicas that rank the pair among their "
        "top 100 candidates; null for pairs already in the graph and for one-replica jobs.",
    )
    score_se: float | None = Field(
        None,
        description="Jobs with replicas > 1: standard error over replicas of the pair's "
        "combined score (a mean percentile rank); null otherwise.",
    )


class EdgePage(Page):
    items: list[EdgeItem] = Field(description="Scored pairs, score descending.")


class WeightsOut(BaseModel):
    nodes: list[str] = Field(description="Function node names, index order of W.")
    weights: list[list[float | None]] = Field(
        description="W[i][j] scores nodes[i] -> nodes[j]; null where it is NaN or infinite."
    )


# Every field of the stored metrics may be missing: results written by earlier versions
# stay readable (GET .../metrics must not fail on an older job's file).


class RankMetrics(BaseModel):
    """How a score table ranks known true edges among the candidate pairs. Also
    ``top@k`` and ``filtered_top@k`` for each k reported (share of the positives ranked
    in the top k of their source's candidates)."""

    model_config = ConfigDict(extra="allow")
    auc: float | None = Field(
        None, description="ROC AUC of positives against all other candidates."
    )
    mrr: float | None = Field(None, description="Mean reciprocal rank of the positives.")
    filtered_mrr: float | None = Field(
        None, description="MRR with the other positives removed from each ranking."
    )
    n_positives: int | None = Field(None, description="Positive edges scored.")


class TestMetrics(BaseModel):
    loss: float | None = Field(None, description="Mean loss on the held-out samples.")
    r2: float | None = Field(None, description="R^2 on the held-out samples.")
    edges: RankMetrics | None = Field(
        None, description="The edge table on the test edges (null without them)."
    )


class ScorerMetrics(BaseModel):
    n_scored: int | None = Field(None, description="Candidate pairs the scorer gives a score.")
    validation: RankMetrics | None = Field(None, description="On the validation edges.")
    test_edges: RankMetrics | None = Field(None, description="On the test edges.")


class ScoreTestInfo(BaseModel):
    rows: int | None = Field(None, description="Samples of the score test's one fixed-model pass.")
    epoch: int | None = Field(None, description="Checkpoint epoch it used.")
    samples: str | None = Field(None, description="Which samples: 'training'.")


class EquivalentSources(BaseModel):
    src: str = Field(description="Source of the discovery.")
    dst: str = Field(description="Its destination.")
    n: int = Field(description="How many sources are equivalent to src for dst.")
    sources: list[str] = Field(description="The first 20 of them, in node order.")


class ConfirmInfo(BaseModel):
    top: int | None = Field(None, description="confirm.top of the spec.")
    refine_epochs: int | None = Field(
        None,
        description="confirm.refine_epochs of the spec: epochs the trained GSNN trained "
        "further, without dropout, before the candidates were fitted on it.",
    )
    refine_seconds: float | None = Field(None, description="Time those epochs took.")
    base_test_loss: float | None = Field(
        None,
        description="Mean squared error of that refined model on the held-out rows the "
        "candidates are tested on; compare test.loss (with replicas: replicas[0].test.loss, "
        "the model refined).",
    )
    min_effect: float | None = Field(None, description="confirm.min_effect of the spec.")
    effect_margin: float | None = Field(
        None,
        description="What the confirmed p-values test each effect against, in the effect "
        "column's units (mean over outputs): min_effect / number of outputs.",
    )
    n_confirmed: int | None = Field(None, description="Candidates confirmed (<= top).")
    discoveries_q_0_1: int | None = Field(
        None, description="Confirmed pairs with confirm_q_value < 0.1."
    )
    train_rows: int | None = Field(None, description="Rows the candidate edges were fitted on.")
    heldout_rows: int | None = Field(None, description="Held-out rows they were tested on.")
    equivalents: list[EquivalentSources] | None = Field(
        None,
        description="Each discovery (confirm_q_value < 0.1) that has equivalents: the sources "
        "its test cannot tell from it (edge column 'equivalents').",
    )
    seconds: float | None = Field(
        None,
        description="Time spent refining the model, fitting and testing the candidates "
        "(with chunks: summed over them, so comparable with a confirmation in one process).",
    )
    chunks: int | None = Field(
        None,
        description="Chunk jobs the confirmation ran as on the workers "
        "(GSNN_EDGES_CONFIRM_CHUNKS); absent when it ran in the job's own process.",
    )


class Timing(BaseModel):
    train_seconds: float | None = Field(None, description="Training loop, all epochs.")
    aux_step_seconds: float | None = Field(None, description="Of which the edge regressor's steps.")
    seconds_per_epoch: float | None = Field(None, description="train_seconds / epochs run.")
    scorer_seconds: float | None = Field(None, description="Scoring every pair after training.")


class LastEpochMetrics(BaseModel):
    validation: RankMetrics | None = Field(None, description="On the validation edges.")
    test_edges: RankMetrics | None = Field(None, description="On the test edges.")


class EnsembleInfo(BaseModel):
    replicas: int | None = Field(None, description="Replicas combined.")
    combine: str | None = Field(None, description="How their scores combine: 'rank'.")
    stability_top_k: int | None = Field(
        None, description="The top-k of each replica that the stability column counts."
    )


class ReplicaMetrics(BaseModel):
    replica: int | None = Field(None, description="Replica index (0 is training.seed's).")
    seed: int | None = Field(None, description="The replica's seed.")
    best_epoch: int | None = Field(None, description="Its checkpoint epoch.")
    validation: RankMetrics | None = Field(None, description="Its own table on validation.")
    test: TestMetrics | None = Field(None, description="Its held-out loss, r2 and test edges.")
    scorers: dict[str, ScorerMetrics] | None = Field(
        None,
        description="Every scorer of the replica (library runs; the service keeps "
        "the job's scorer).",
    )
    device: str | None = Field(None, description="Device it trained on.")
    timing: Timing | None = Field(None, description="Its wall-clock timings (seconds).")


class MetricsOut(BaseModel):
    best_epoch: int | None = Field(None, description="Epoch of the kept checkpoint.")
    scorer: str | None = Field(None, description="The scorer behind the edge table.")
    validation: RankMetrics | None = Field(
        None, description="The edge table on the validation edges (null without them)."
    )
    test: TestMetrics | None = Field(
        None, description="Held-out samples (loss, r2) and the edge table on test edges."
    )
    scorers: dict[str, ScorerMetrics] | None = Field(
        None,
        description="Every scorer of the run (hybrid, score_test, observed_baseline, "
        "magnitude), so you can see whether the network adds anything over the "
        "observed-node baseline.",
    )
    score_test: ScoreTestInfo | None = Field(
        None, description="Rows and checkpoint epoch of the score test's pass."
    )
    confirm: ConfirmInfo | None = Field(
        None, description="The confirmation stage (null when confirm.top is 0)."
    )
    history: list[EpochRecord] = Field(default_factory=list, description="Per epoch.")
    device: str | None = Field(None, description="Device used.")
    timing: Timing | None = Field(None, description="Wall-clock timings (seconds).")
    validation_edges: list[tuple[str, str]] = Field(
        default_factory=list,
        description="The validation edges (given, or hidden by validation.holdout_fraction).",
    )
    last_epoch: LastEpochMetrics | None = Field(
        None, description="The regressor's W at the last epoch (before the checkpoint restore)."
    )
    ensemble: EnsembleInfo | None = Field(
        None,
        description="Jobs with replicas > 1: how the table combines them (null otherwise). "
        "validation, test.edges and scorers then describe the combined table; test.loss and "
        "test.r2 are the replicas' means; history, best_epoch and last_epoch are replica 0's.",
    )
    replicas: list[ReplicaMetrics] | None = Field(
        None, description="Jobs with replicas > 1: each replica's own figures."
    )


class EvaluateIn(BaseModel):
    positive_edges: list[tuple[str, str]] = Field(
        min_length=1, description="Held-out true function -> function edges [src, dst]."
    )
    top_k: list[Annotated[int, Field(ge=1)]] = Field(
        [1, 3, 5], min_length=1, max_length=20, description="k values for top@k (each >= 1)."
    )
