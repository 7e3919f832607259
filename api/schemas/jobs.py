"""Job spec and job models. Defaults come from ``gsnn_edges.spec`` (single source)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.common import Page
from gsnn_edges.service.jsonsafe import to_jsonable
from gsnn_edges.service.models import JOB_STATUSES
from gsnn_edges.spec import (
    AGGREGATORS,
    CONFIRM_MAX_TOP,
    DEVICES,
    LR_SCHEDULES,
    NORMS,
    SCORE_MODES,
    SCORERS,
    ConfirmSpec,
    ModelSpec,
    RegressorSpec,
    TrainingSpec,
    TrainSpec,
)

_M, _R, _T = ModelSpec(), RegressorSpec(), TrainingSpec()
JobStatus = Literal[JOB_STATUSES]
_STRICT = ConfigDict(extra="forbid")


class ModelBlock(BaseModel):
    """GSNN architecture."""

    model_config = _STRICT
    channels: int = Field(_M.channels, ge=1, description="Hidden channels per function node.")
    layers: int = Field(_M.layers, ge=2, description="Residual blocks (>= 2 for the regressor).")
    share_layers: bool = Field(_M.share_layers, description="Share sparse weights across layers.")
    norm: Literal[NORMS] = Field(_M.norm, description=f"Normalization, one of {NORMS}.")
    dropout: float = Field(_M.dropout, ge=0, lt=1, description="Dropout probability.")
    node_mlp: bool = Field(_M.node_mlp, description="Add a shared per-node MLP in each block.")
    add_function_self_edges: bool = Field(
        _M.add_function_self_edges, description="Add a self edge to every function node."
    )


class RegressorBlock(BaseModel):
    """MagnitudeEdgeRegressor (scores every function -> function pair)."""

    model_config = _STRICT
    aggregators: list[Literal[AGGREGATORS]] = Field(
        list(_R.aggregators),
        min_length=1,
        description=f"Activation magnitude aggregators, each one of {AGGREGATORS}.",
    )
    lr: float = Field(_R.lr, gt=0, description="Regressor learning rate.")
    weight_decay: float = Field(_R.weight_decay, ge=0, description="Regressor weight decay.")
    ridge: float = Field(_R.ridge, ge=0, description="Ridge penalty on W.")
    dropout: float = Field(_R.dropout, ge=0, lt=1, description="Feature dropout probability.")
    score_mode: Literal[SCORE_MODES] = Field(
        _R.score_mode, description=f"How W becomes edge scores, one of {SCORE_MODES}."
    )
    lr_schedule: Literal[LR_SCHEDULES] = Field(
        _R.lr_schedule,
        description="'cosine' anneals the regressor lr to 5% over the run; 'constant' keeps it.",
    )
    scorer: Literal[SCORERS] = Field(
        _R.scorer,
        description="Which scores fill the edge table: 'hybrid' (observed-node regression "
        "where the target is observed, the GSNN score test where it is latent), "
        "'score_test', 'observed_baseline' (latent targets unscored) or 'magnitude' (the "
        "seed's W). Every job's metrics report all four when validation/test edges exist.",
    )


class TrainingBlock(BaseModel):
    """Optimisation loop."""

    model_config = _STRICT
    epochs: int = Field(_T.epochs, ge=1, le=100_000, description="Training epochs.")
    batch_size: int = Field(_T.batch_size, ge=1, description="Samples per batch.")
    lr: float = Field(_T.lr, gt=0, description="GSNN learning rate.")
    seed: int = Field(_T.seed, ge=0, description="Random seed (splits, init, batches).")
    test_fraction: float = Field(
        _T.test_fraction, ge=0, lt=1, description="Share of samples held out for test."
    )
    device: Literal[DEVICES] = Field(_T.device, description=f"One of {DEVICES}.")


class ValidationBlock(BaseModel):
    """Checkpoint selection: exactly one of ``edges`` or ``holdout_fraction``."""

    model_config = _STRICT
    edges: list[tuple[str, str]] | None = Field(
        None, description="Known true function -> function edges absent from the graph."
    )
    holdout_fraction: float | None = Field(
        None, gt=0, lt=1, description="Share of the graph's own function edges to hide."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ValidationBlock:
        if (self.edges is None) == (self.holdout_fraction is None):
            raise ValueError("set exactly one of 'edges' or 'holdout_fraction' (or send null)")
        return self


class ConfirmBlock(BaseModel):
    """Confirmation of the top candidates by refitting (opt-in)."""

    model_config = _STRICT
    top: int = Field(
        ConfirmSpec().top,
        ge=0,
        le=CONFIRM_MAX_TOP,
        description="Candidates (by score, not in the graph) added to the trained GSNN, "
        "fitted on the training rows and tested on the held-out test rows; their "
        "confirm_p_value / confirm_q_value / effect columns answer 'does this edge improve "
        "held-out prediction'. 0 (default) disables; needs training.test_fraction > 0.",
    )


class JobSpecBody(BaseModel):
    """Hyperparameters of a job; every block is optional with the defaults shown."""

    model_config = _STRICT
    model: ModelBlock = Field(default_factory=ModelBlock, description="GSNN architecture.")
    regressor: RegressorBlock = Field(
        default_factory=RegressorBlock, description="Edge regressor settings."
    )
    training: TrainingBlock = Field(default_factory=TrainingBlock, description="Training loop.")
    validation: ValidationBlock | None = Field(
        None, description="Checkpoint selection; null keeps the last epoch."
    )
    confirm: ConfirmBlock = Field(
        default_factory=ConfirmBlock, description="Confirmation of the top candidates."
    )

    def to_spec_dict(self) -> dict[str, Any]:
        """Canonical ``TrainSpec.to_dict()`` form (stored and hashed)."""
        raw = self.model_dump(mode="json")
        raw["validation"] = raw["validation"] or {}
        return to_jsonable(TrainSpec.from_dict(raw).to_dict())


class JobCreate(JobSpecBody):
    """A training job request."""

    graph_id: str = Field(description="Graph to train on.")
    dataset_id: str = Field(description="Dataset of that graph.")


class Progress(BaseModel):
    epoch: int | None = Field(None, description="Last finished epoch (1-based).")
    epochs: int | None = Field(None, description="Total epochs.")
    train_loss: float | None = Field(None, description="Mean training loss of that epoch.")
    aux_loss: float | None = Field(None, description="Edge regressor loss of that epoch.")
    val_auc: float | None = Field(None, description="Validation AUC, if validation is set.")
    val_mrr: float | None = Field(None, description="Validation MRR, if validation is set.")
    best_epoch: int | None = Field(None, description="Epoch of the best checkpoint so far.")


class JobError(BaseModel):
    type: str = Field(description="Error class, e.g. SpecValidationError or WorkerLost.")
    message: str = Field(description="What went wrong and what to change.")


class JobOut(BaseModel):
    id: str = Field(description="Opaque job id.")
    status: JobStatus = Field(description="queued -> running -> succeeded|failed|cancelled.")
    graph_id: str = Field(description="Graph trained on.")
    dataset_id: str = Field(description="Dataset trained on.")
    spec: dict[str, Any] = Field(description="Full spec with defaults applied.")
    progress: Progress | None = Field(description="Progress of the last finished epoch.")
    error: JobError | None = Field(description="Why the job failed; null otherwise.")
    device: str | None = Field(description="Device the job runs or ran on.")
    attempts: int = Field(description="How many times a worker has claimed the job.")
    created_at: datetime = Field(description="Submission time (UTC).")
    started_at: datetime | None = Field(description="First start time (UTC).")
    finished_at: datetime | None = Field(description="Time it reached a terminal status.")


class JobList(Page):
    items: list[JobOut] = Field(description="Jobs on this page, oldest first.")
