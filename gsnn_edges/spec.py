"""The job spec: the hyperparameters of one joint GSNN + edge-regressor run.

These pydantic models are the one definition of every field's default, bounds and
description. The library (:func:`gsnn_edges.train.train_joint`), the REST API (request
validation and OpenAPI, ``api/schemas/jobs.py``), the worker and the CLI all use them.
Checks that need the graph or the data (validation edges, held-out rows) are in
:mod:`gsnn_edges.train_validation`. The allowed choices are declared next to the code
that implements them (:mod:`gsnn_edges.nn.choices`, :mod:`gsnn_edges.inference.choices`,
:mod:`gsnn_edges.device`). Why each default: ``benchmarks/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gsnn_edges.device import Device
from gsnn_edges.inference.choices import Aggregator, LrSchedule, ScoreMode, Scorer
from gsnn_edges.nn.choices import Norm

# The confirmation fits M + 1 variants of M candidate edges each (work and memory grow
# with M^2): this bounds M.
CONFIRM_MAX_TOP = 500
# Activation memory a chunk of side-by-side variants may take (forward and backward);
# the submit-time memory estimate counts one chunk.
CONFIRM_CHUNK_BYTES = 256 * 2**20
# Epochs of one job (training.epochs)
MAX_TRAINING_EPOCHS = 100_000
# Epochs the confirmation's base model trains further without dropout (confirm.refine_epochs;
# chosen among 0, 15, 30, 70 in benchmarks/README.md, "The confirmation's refined base
# model" and "The confirmation's minimum effect")
REFINE_EPOCHS = 15
# The held-out squared error, summed over outputs, a confirmed edge must remove
# (confirm.min_effect; chosen in
# benchmarks/README.md, "The confirmation's minimum effect")
MIN_EFFECT = 0.005
# Replicas of one job: each is a full training run (and in the service a worker's task).
MAX_REPLICAS = 16


class SpecValidationError(ValueError):
    """A training spec field is invalid; ``loc`` names the field, e.g. ``('model', 'norm')``."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")
        self.loc, self.msg = loc, msg


class _Block(BaseModel):
    # unknown fields are errors (a typo must not silently train with a default), and
    # assignments are checked like construction
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSpec(_Block):
    """GSNN architecture (SPEC section 2)."""

    channels: int = Field(8, ge=1, description="Hidden channels per function node.")
    layers: int = Field(
        6, ge=2, description="Residual blocks (>= 2: the regressor pairs adjacent layers)."
    )
    share_layers: bool = Field(False, description="Share the sparse weights across layers.")
    norm: Norm = Field("none", description="Per-node normalisation.")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout probability.")
    node_mlp: bool = Field(False, description="Add a shared per-node MLP in each block.")
    add_function_self_edges: bool = Field(
        True, description="Add a self edge to every function node."
    )


class RegressorSpec(_Block):
    """MagnitudeEdgeRegressor (SPEC section 4) and the edge table's scorer."""

    aggregators: tuple[Aggregator, ...] = Field(
        ("sum", "max"), min_length=1, description="Activation magnitude aggregators."
    )
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False, description="Regressor learning rate.")
    weight_decay: float = Field(
        1e-4, ge=0, allow_inf_nan=False, description="Regressor weight decay."
    )
    ridge: float = Field(1e-2, ge=0, allow_inf_nan=False, description="Ridge penalty on W.")
    dropout: float = Field(0.2, ge=0, lt=1, description="Feature dropout probability.")
    score_mode: ScoreMode = Field("abs", description="How W becomes edge scores.")
    lr_schedule: LrSchedule = Field(
        "cosine",
        description="'cosine' anneals the regressor's learning rate to 5% of lr over the "
        "run; 'constant' keeps it (the public reference).",
    )
    scorer: Scorer = Field(
        "hybrid",
        description="Which scores fill the edge table: 'hybrid' (observed-node regression "
        "where the target is observed, the GSNN score test where it is latent), "
        "'score_test', 'observed_baseline' (latent targets unscored) or 'magnitude' (the "
        "seed's W). The regressor always trains: its validation AUC picks the checkpoint, "
        "and a job's metrics report every scorer when validation/test edges exist.",
    )


class TrainingSpec(_Block):
    """Optimisation loop."""

    epochs: int = Field(30, ge=1, le=MAX_TRAINING_EPOCHS, description="Training epochs.")
    batch_size: int = Field(64, ge=1, description="Samples per batch.")
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False, description="GSNN AdamW learning rate.")
    seed: int = Field(
        0, ge=0, le=2**63 - 1, description="Random seed (splits, initialisation, batches)."
    )
    test_fraction: float = Field(
        0.2, ge=0, le=0.5, description="Share of the samples held out for test."
    )
    device: Device = Field("auto", description="'auto' takes a GPU when one is present.")


class ValidationSpec(_Block):
    """How the best checkpoint is chosen: at most one of ``edges`` and
    ``holdout_fraction``; neither keeps the last epoch."""

    # the "not both" rule in the published JSON schema too, not only in the validator
    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["edges", "holdout_fraction"],
                "properties": {"edges": {"type": "array"}, "holdout_fraction": {"type": "number"}},
            }
        }
    )

    edges: list[tuple[str, str]] | None = Field(
        None, description="Known true function -> function edges absent from the graph."
    )
    holdout_fraction: float | None = Field(
        None, gt=0, lt=1, description="Share of the graph's own function edges to hide."
    )

    @model_validator(mode="after")
    def _at_most_one(self) -> ValidationSpec:
        if self.edges is not None and self.holdout_fraction is not None:
            raise ValueError("give either 'edges' or 'holdout_fraction', not both")
        return self


class ConfirmSpec(_Block):
    """Confirmation of the edge table's top candidates by refitting
    (:mod:`gsnn_edges.inference.confirm`); opt-in."""

    top: int = Field(
        0,
        ge=0,
        le=CONFIRM_MAX_TOP,
        description="Candidates (by score, not in the graph; a pair whose reverse scores "
        "higher is passed over: held-out prediction cannot orient a pair) added to the "
        "trained GSNN (a copy refined refine_epochs more), fitted on the training rows and "
        "tested on the held-out test rows; their "
        "confirm_p_value / confirm_q_value / effect columns answer 'does this edge improve "
        "held-out prediction'. 0 (default) disables; needs training.test_fraction > 0.",
    )
    refine_epochs: int = Field(
        REFINE_EPOCHS,
        ge=0,
        le=MAX_TRAINING_EPOCHS,
        description="Epochs the trained GSNN trains further on the training rows, without "
        "dropout, before the candidates are fitted on it (a copy: the screening table and "
        "the stored model are unchanged). The test holds only where the network fits its "
        "graph: an underfitted network lets non-edges improve held-out prediction. 0 "
        "confirms on the trained model as it is.",
    )
    min_effect: float = Field(
        MIN_EFFECT,
        ge=0.0,
        le=1.0,
        description="The held-out squared error an edge must remove to count, summed over "
        "the outputs (standardised on the training rows, so 0.01 is a hundredth of one "
        "output's variance). The confirmed p-values test 'removing this edge raises the "
        "held-out error by more than min_effect', not 'by more than 0': where the network "
        "fits its graph imperfectly, non-edges improve held-out prediction by tiny "
        "amounts. 0 tests any improvement.",
    )


class TrainSpec(_Block):
    """Hyperparameters of a job; every block is optional with the defaults shown."""

    model: ModelSpec = Field(default_factory=ModelSpec, description="GSNN architecture.")
    regressor: RegressorSpec = Field(
        default_factory=RegressorSpec, description="Edge regressor and scorer."
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Training loop.")
    validation: ValidationSpec = Field(
        default_factory=ValidationSpec,
        description="Checkpoint selection; empty or null keeps the last epoch.",
    )
    confirm: ConfirmSpec = Field(
        default_factory=ConfirmSpec, description="Confirmation of the top candidates."
    )
    replicas: int = Field(
        1,
        ge=1,
        le=MAX_REPLICAS,
        description="Independent training runs (same data split and validation edges, "
        "other random numbers) whose scores are combined: mean percentile rank per pair, "
        "Cauchy-combined p-values, plus stability and score_se columns. The service runs "
        "them on separate workers at once.",
    )

    @field_validator("model", "regressor", "training", "validation", "confirm", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any) -> Any:
        return {} if value is None else value

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (stored with a job and hashed for idempotency)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TrainSpec:
        """Parse a (partial) spec; missing fields take their defaults.

        Raises:
            SpecValidationError: naming the first invalid field.
        """
        try:
            return cls.model_validate(d or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise SpecValidationError(tuple(first["loc"]), error_message(first)) from None


def error_message(error: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence: the rule, then the offending value (shortened)
    for a bound or choice; a validator's own message as written."""
    if error["type"] == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    shown = repr(error.get("input"))
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{error['msg']}, got {shown}"
