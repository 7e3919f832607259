"""Job request and job models; the job spec itself is ``gsnn_edges.spec.TrainSpec``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.schemas.common import Page
from gsnn_edges.job_status import JobStatus
from gsnn_edges.spec import TrainSpec


class JobCreate(TrainSpec):
    """A training job request: the graph, the dataset and the job spec (every spec block
    is optional, with the defaults shown)."""

    graph_id: str = Field(description="Graph to train on.")
    dataset_id: str = Field(description="Dataset of that graph.")

    def spec(self) -> TrainSpec:
        """The job spec alone (stored with the job, hashed for idempotency)."""
        return TrainSpec.model_validate(self.model_dump(exclude={"graph_id", "dataset_id"}))


class Progress(BaseModel):
    epoch: int | None = Field(None, description="Last finished epoch (1-based).")
    epochs: int | None = Field(None, description="Total epochs.")
    train_loss: float | None = Field(None, description="Mean training loss of that epoch.")
    aux_loss: float | None = Field(None, description="Edge regressor loss of that epoch.")
    val_auc: float | None = Field(None, description="Validation AUC, if validation is set.")
    val_mrr: float | None = Field(None, description="Validation MRR, if validation is set.")
    best_epoch: int | None = Field(None, description="Epoch of the best checkpoint so far.")
    stage: str | None = Field(
        None,
        description="What the job does now: 'training' (epochs), then 'scoring' (every "
        "pair at the kept checkpoint), 'combining' (a job with replicas, once they are "
        "done), 'confirming' (with confirm.top).",
    )
    confirm_chunks: int | None = Field(
        None,
        description="While confirming on workers (GSNN_EDGES_CONFIRM_CHUNKS > 1): the "
        "chunk jobs the candidates were split into.",
    )
    confirm_chunks_done: int | None = Field(
        None, description="Of those, the chunks that have finished."
    )


class JobError(BaseModel):
    type: str = Field(description="Error class, e.g. SpecValidationError or WorkerLost.")
    message: str = Field(description="What went wrong and what to change.")


class ReplicaOut(BaseModel):
    """One replica of a job with ``spec.replicas > 1`` (trained by a worker of its own)."""

    model_config = ConfigDict(from_attributes=True)
    replica: int = Field(description="Replica index (0 trains with training.seed).")
    status: JobStatus = Field(description="queued -> running -> succeeded|failed|cancelled.")
    progress: Progress | None = Field(description="Progress of its last finished epoch.")
    error: JobError | None = Field(description="Why it failed; null otherwise.")
    device: str | None = Field(description="Device it runs or ran on.")
    attempts: int = Field(description="How many times a worker has claimed it.")
    started_at: datetime | None = Field(description="First start time (UTC).")
    finished_at: datetime | None = Field(description="Time it reached a terminal status.")


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the Job row
    id: str = Field(description="Opaque job id.")
    status: JobStatus = Field(description="queued -> running -> succeeded|failed|cancelled.")
    graph_id: str = Field(description="Graph trained on.")
    dataset_id: str = Field(description="Dataset trained on.")
    # as stored at submission, not re-validated: a job stays readable whatever later
    # versions of TrainSpec accept
    spec: dict[str, Any] = Field(
        description="The job spec (TrainSpec, as in the request) with defaults applied."
    )
    progress: Progress | None = Field(description="Progress of the last finished epoch.")
    error: JobError | None = Field(description="Why the job failed; null otherwise.")
    device: str | None = Field(description="Device the job runs or ran on.")
    attempts: int = Field(description="How many times a worker has claimed the job.")
    created_at: datetime = Field(description="Submission time (UTC).")
    started_at: datetime | None = Field(description="First start time (UTC).")
    finished_at: datetime | None = Field(description="Time it reached a terminal status.")
    replicas: list[ReplicaOut] | None = Field(
        None,
        validation_alias="children",
        description="Jobs with spec.replicas > 1: each replica's status and progress (they "
        "train at once on free workers; the job then combines them). Null otherwise.",
    )

    @field_validator("replicas", mode="before")
    @classmethod
    def _none_without_replicas(cls, value: Any) -> Any:
        return value or None

    @model_validator(mode="after")
    def _progress_of_the_slowest_replica(self) -> JobOut:
        """While its replicas train, a job's progress is its slowest replica's."""
        if self.progress is None and self.replicas:
            running = [r.progress for r in self.replicas if r.progress is not None]
            self.progress = min(running, key=lambda p: p.epoch or 0, default=None)
        return self


class EpochRecord(Progress):
    """One finished epoch (served live by ``GET .../epochs``, kept in the metrics'
    ``history``)."""

    seconds: float | None = Field(None, description="Wall-clock time of the epoch.")


class EpochList(BaseModel):
    replica: int | None = Field(description="The replica they belong to (jobs with replicas).")
    items: list[EpochRecord] = Field(description="Finished epochs after 'since', in order.")


class JobList(Page):
    items: list[JobOut] = Field(description="Jobs on this page, oldest first.")
