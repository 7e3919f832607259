"""Job service (worker side): claim a job, train it, store results, record the outcome.

Used by the Celery task ``gsnn_edges.run_job``; torch is imported only in here, lazily,
inside the process that trains.
"""

from __future__ import annotations

import io
import logging
import resource
import secrets
from typing import Any

from gsnn_edges.device import resolve_device
from gsnn_edges.job_status import JobStatus
from gsnn_edges.service import logs
from gsnn_edges.service import repository as repo
from gsnn_edges.service.children import chunk_variants, settle_child
from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.graphs import graph_content
from gsnn_edges.service.heartbeat import Heartbeat
from gsnn_edges.service.jobs import new_job
from gsnn_edges.service.jsonsafe import to_jsonable
from gsnn_edges.service.models import Job

log = logging.getLogger(__name__)
PROGRESS_KEYS = (
    "epoch",
    "epochs",
    "train_loss",
    "aux_loss",
    "val_auc",
    "val_mrr",
    "best_epoch",
    "stage",
    "confirm_chunks",
    "confirm_chunks_done",
)


class ClaimLost(Exception):
    """Another worker (or the reaper) took the job over; stop without writing."""


def _device_label(requested: str) -> str:
    """The device label recorded at claim time (``auto`` resolved as training will).

    An unavailable ``cuda`` keeps its label: ``train_joint`` then fails the job with a
    message saying no CUDA device is present.
    """
    try:
        return str(resolve_device(requested))
    except (RuntimeError, ValueError):
        return requested


def run_next_job(ctx: ServiceContext, job_id: str, tries: int = 3) -> str:
    """What a worker does with a queue message: a message is a turn, not a ticket. It
    runs the job :func:`repository.next_fair_job` picks (the message's own job when
    nothing else is claimable); messages and queued jobs stay one to one, so the
    message's job runs on a later turn. A pick another worker claimed first is picked
    again, up to ``tries`` times.

    Returns:
        :func:`run_job`'s outcome.
    """
    for _ in range(tries):
        with ctx.db.session() as session:
            pick = repo.next_fair_job(session)
        if pick is None:
            break
        outcome = run_job(ctx, pick)
        if outcome != "skipped":
            return outcome
    return run_job(ctx, job_id)


def run_job(ctx: ServiceContext, job_id: str) -> str:
    """Run one job to a terminal status. Idempotent: a job it cannot claim is a no-op.
    Every log line while it runs carries ``job_id`` and the job's ``tenant``.

    Returns:
        The outcome: ``succeeded``, ``failed``, ``cancelled``, ``skipped`` or ``lost``.
    """
    with logs.bound(job_id=job_id, tenant=None):
        return _run_job(ctx, job_id)


def _run_job(ctx: ServiceContext, job_id: str) -> str:
    with ctx.db.session() as session:
        job = repo.load_job(session, job_id)
    if job is not None:
        logs.bind(tenant=job.tenant)
    if job is None or JobStatus(job.status).is_terminal:
        log.info("job %s: nothing to do (%s)", job_id, "missing" if job is None else job.status)
        return "skipped"
    token = secrets.token_hex(16)
    device = _device_label((job.spec.get("training") or {}).get("device", "auto"))
    with ctx.db.session() as session:
        if not repo.claim_job(session, job_id, token, device):
            log.info("job %s: already claimed, cancelled or waiting for replicas", job_id)
            return "skipped"
        if job.parent_id is not None:
            repo.start_parent(session, job.parent_id)
    log.info("job %s started", job_id, extra={"device": device})
    with Heartbeat(ctx, job_id, token):
        outcome = _run_claimed(ctx, job, token, device)
    if job.parent_id is not None and outcome != "lost":
        ready = settle_child(ctx, job_id)
        if ready is not None:  # the last child: run the job here, while warm
            run_job(ctx, ready)
    return outcome


def _run_claimed(ctx: ServiceContext, job: Job, token: str, device_label: str) -> str:
    from gsnn_edges.train import TrainingCancelled

    limit = MemoryLimit(ctx.settings.worker_memory_mb, device_label)
    try:
        with limit:
            device = _train_and_store(ctx, job, token)
        if device is None:  # its confirmation went to chunk jobs; the job runs again
            return "staged"
        status, error = JobStatus.succeeded, None
    except ClaimLost:
        log.warning("job %s: claim lost, stopping without writing", job.id)
        return "lost"
    except TrainingCancelled:
        status, error, device = JobStatus.cancelled, None, None
    except Exception as exc:  # every failure is recorded for the user
        log.exception("job %s failed", job.id)
        status, error, device = JobStatus.failed, _error_payload(ctx, exc, limit.exhausted), None
    with ctx.db.session() as session:
        if not repo.finish_job(session, job.id, token, status, error=error, device=device):
            return "lost"
    if status == JobStatus.succeeded and job.staged_attempt is not None:
        # published under this attempt: the staged copy (edge tables, W, states) goes
        ctx.store.delete(ctx.store.attempt_folder(job.id, job.staged_attempt))
    log.info("job %s %s", job.id, status, extra={"status": str(status)})
    return status


def _data_segment_bytes() -> int:
    """This process's data segment (``VmData``: what ``RLIMIT_DATA`` limits); 0 where
    ``/proc`` does not say."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class MemoryLimit:
    """While a CPU job trains, caps this process's data segment (``RLIMIT_DATA``: the
    heap, thread stacks and anonymous mappings, where torch, numpy and Arrow allocate)
    at ``megabytes`` (``GSNN_EDGES_WORKER_MEMORY_MB``). An allocation past it raises in
    the job, which then fails once with "out of memory", where the kernel's OOM killer
    would end the process and the job would be re-run up to ``max_attempts`` times.

    Libraries report a refused allocation in their own words (``MemoryError``, torch's
    "can't allocate memory", Arrow's "failed to launch worker thread"), so ``exhausted``
    also records whether the segment was within ``SLACK`` of the cap when the job
    raised. Not for CUDA jobs: the driver's own mappings count against this limit (a GPU
    out of memory raises in the job anyway)."""

    SLACK = 64 * 2**20

    def __init__(self, megabytes: float, device: str) -> None:
        self.cap = int(megabytes * 2**20) if device.startswith("cpu") else None
        self.exhausted = False
        self._saved: tuple[int, int] | None = None

    def __enter__(self) -> MemoryLimit:
        if self.cap is not None:
            soft, hard = self._saved = resource.getrlimit(resource.RLIMIT_DATA)
            for limit in (soft, hard):
                if limit != resource.RLIM_INFINITY:
                    self.cap = min(self.cap, limit)
            resource.setrlimit(resource.RLIMIT_DATA, (self.cap, hard))
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        if self._saved is not None:
            if exc is not None:
                self.exhausted = _data_segment_bytes() > self.cap - self.SLACK
            resource.setrlimit(resource.RLIMIT_DATA, self._saved)


def _is_out_of_memory(exc: BaseException) -> bool:
    return (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))
    )


def _error_payload(
    ctx: ServiceContext, exc: BaseException, memory_exhausted: bool = False
) -> dict[str, str]:
    kind = type(exc).__name__
    if memory_exhausted or _is_out_of_memory(exc):
        mb = ctx.settings.worker_memory_mb
        return {
            "type": "OutOfMemory",
            "message": f"out of memory: the job needed more than the worker's {mb:g} MiB "
            "(GSNN_EDGES_WORKER_MEMORY_MB); use fewer function nodes, channels x layers or "
            f"a smaller batch, or a worker with more memory ({kind}: {exc})",
        }
    if kind == "SoftTimeLimitExceeded":
        limit = ctx.settings.job_time_limit_s
        return {"type": "TimeLimitExceeded", "message": f"the job ran longer than {limit} s"}
    return {"type": kind, "message": str(exc) or kind}


def _progress_record(info: dict) -> dict:
    """What the job's progress keeps of a training or stage record."""
    return to_jsonable({k: info.get(k) for k in PROGRESS_KEYS})


def _callbacks(ctx: ServiceContext, job_id: str, token: str) -> tuple[Any, Any]:
    def on_epoch(info: dict) -> None:
        progress = _progress_record(info)
        with ctx.db.session() as session:
            if not repo.save_progress(session, job_id, token, progress):
                raise ClaimLost(job_id)

    def should_stop() -> bool:
        with ctx.db.session() as session:
            state = repo.control_state(session, job_id, token)
        if not state.owned:
            raise ClaimLost(job_id)
        return state.cancel_requested

    return on_epoch, should_stop


def _train_and_store(ctx: ServiceContext, job: Job, token: str) -> str | None:
    """Run the job's part and store what it produced under this attempt: train a replica
    job's replica, fit a chunk job's confirmation variants, or train (or combine the
    replicas of) a job and confirm its candidates, in this process or by handing them to
    chunk jobs (then None: the job is staged), or merge a staged job's chunks. Returns
    the device."""
    from gsnn_edges.train import assemble, confirmation_base, train_replica

    on_epoch, should_stop = _callbacks(ctx, job.id, token)
    # cancelled between claim and start: end cancelled before the setup, whose
    # spec/data/device errors would otherwise turn the job failed (its own check is later)
    if should_stop():
        raise _cancelled()
    setup = job_setup(ctx, job)
    spec = setup.spec
    if job.confirm_chunk is not None:
        return _fit_chunk(ctx, job, setup, token)
    if job.staged_attempt is not None:
        return _merge_chunks(ctx, job, setup, token, on_epoch)
    if job.parent_id is not None:
        run = train_replica(setup, job.replica or 0, on_epoch, should_stop)
        store_replica(ctx, job.id, run, spec.regressor.scorer, attempt=token)
        return run.metrics["device"]
    if spec.replicas > 1:
        runs = _load_replicas(ctx, job.id, setup)
    else:
        runs = [train_replica(setup, 0, on_epoch, should_stop)]
    fan_out = spec.confirm.top > 0 and ctx.settings.confirm_chunks > 1
    result = assemble(setup, runs, on_epoch, confirm=not fan_out, should_stop=should_stop)
    if fan_out:  # refine once here; the chunks fit on the staged copy
        on_epoch({**result.history[-1], "stage": "confirming"})
        base, facts = confirmation_base(setup, result.model, should_stop)
        result.metrics["confirm"] = facts  # the merge completes it (_merge_chunks)
    store_results(ctx, job.id, result, attempt=token)  # published by finish_job
    if fan_out:
        _stage_confirmation(ctx, job, setup, result, base, token)
        return None
    return result.device


def job_setup(ctx: ServiceContext, job: Job) -> Any:
    """The :class:`~gsnn_edges.train.RunSetup` of ``job``: its stored graph, dataset and
    spec, split and checked as its run sees them."""
    from gsnn_edges.graph import GSNNGraph
    from gsnn_edges.spec import TrainSpec
    from gsnn_edges.train import RunSetup

    graph = GSNNGraph.from_json(graph_content(ctx, job.graph_id))
    data = ctx.store.read_parquet(ctx.store.dataset_key(job.dataset_id))
    return RunSetup.prepare(graph, data, TrainSpec.from_dict(job.spec))


def _stage_confirmation(
    ctx: ServiceContext, job: Job, setup: Any, result: Any, base: Any, token: str
) -> None:
    """Hand the confirmation of the job's candidates to chunk jobs: the unconfirmed
    results (stored), the candidates and the confirmation's base model (refined,
    ``train.confirmation_base``) stay under this attempt for them and for the merge; the
    job lets go of its claim in the transaction that adds the chunks."""
    from gsnn_edges.train import confirm_candidates

    pairs = confirm_candidates(setup, result.edges)
    ctx.store.write_npy(ctx.store.job_key(job.id, "confirm_pairs", token), pairs)
    _write_states(ctx, job.id, token, confirm_model=base.state_dict())
    n_chunks = min(ctx.settings.confirm_chunks, len(pairs) + 1)
    chunks = []
    for c in range(n_chunks):
        chunk = new_job(
            job.tenant, job.graph_id, job.dataset_id, job.spec, parent_id=job.id, confirm_chunk=c
        )
        # as old as their job, so a worker's fair pick runs them before the tenant's
        # later jobs
        chunk.created_at = job.created_at
        chunks.append(chunk)
    last = result.history[-1] if result.history else {}
    stage = {"stage": "confirming", "confirm_chunks": n_chunks, "confirm_chunks_done": 0}
    progress = _progress_record({**last, **stage})
    with ctx.db.session() as session:
        if not repo.stage_confirmation(session, job.id, token, progress, chunks):
            if repo.control_state(session, job.id, token).owned:
                raise _cancelled("cancelled before its confirmation")
            raise ClaimLost(job.id)
    log.info("job %s: confirming %d candidates in %d chunks", job.id, len(pairs), n_chunks)
    try:  # a lost send is re-sent by the reaper (the chunks are queued jobs)
        ctx.enqueue_many([c.id for c in chunks])
    except Exception:
        log.exception("job %s: could not queue its confirmation chunks", job.id)


def _fit_chunk(ctx: ServiceContext, job: Job, setup: Any, token: str) -> str:
    """A confirmation chunk job: fit its share of the variants on the refined checkpoint
    its job staged and store their held-out losses and weights (``service.children``)."""
    import time

    import numpy as np
    import torch

    from gsnn_edges.inference.confirm import fit_variants

    with ctx.db.session() as session:
        n_chunks = len(repo.chunk_jobs(session, job.parent_id))
        parent = repo.load_job(session, job.parent_id)
    if parent is None or parent.staged_attempt is None:
        raise RuntimeError(f"job {job.parent_id} staged no confirmation for this chunk")
    staged = lambda what: ctx.store.job_key(parent.id, what, parent.staged_attempt)
    pairs = ctx.store.read_npy(staged("confirm_pairs"))
    model = setup.build_model(dropout=0.0)  # the refined base: eval mode, as fit_variants uses it
    # a job staged before confirm_model existed confirms on its trained model, as then
    what = "confirm_model" if ctx.store.path(staged("confirm_model")).exists() else "model"
    state = torch.load(
        io.BytesIO(ctx.store.read_bytes(staged(what))), map_location="cpu", weights_only=True
    )
    model.load_state_dict(state)
    variants = chunk_variants(len(pairs), n_chunks, job.confirm_chunk)
    t0 = time.perf_counter()
    split = setup.split
    fit = fit_variants(
        model,
        setup.graph,
        pairs,
        variants,
        setup.training_batches(),
        split.x_test,
        split.y_test,
    )
    key = lambda what: ctx.store.job_key(job.id, what, token)
    ctx.store.write_npy(key("confirm_losses"), fit.losses)
    ctx.store.write_npy(key("confirm_thetas"), fit.thetas.astype(np.float32))
    ctx.store.write_json(
        key("metrics"),
        {
            "variants": [variants.start, variants.stop],
            "train_rows": fit.n_train_rows,
            "seconds": time.perf_counter() - t0,
        },
    )
    return str(setup.device)


def _merge_chunks(ctx: ServiceContext, job: Job, setup: Any, token: str, on_epoch: Any) -> str:
    """A staged job's last run: judge the candidates on its chunks' fits, and publish its
    staged results with the confirmation under this attempt."""
    import time

    import numpy as np

    from gsnn_edges.inference.confirm import VariantFits, judge, with_confirmation
    from gsnn_edges.train import confirm_metrics

    with ctx.db.session() as session:
        chunks = repo.chunk_jobs(session, job.id)
    parts, seconds = [], 0.0
    for chunk in chunks:  # one per chunk: a handful of file reads
        key = lambda what, c=chunk: ctx.store.job_key(c.id, what, c.result_attempt)
        info = ctx.store.read_json(key("metrics"))
        parts.append(
            VariantFits(
                np.arange(*info["variants"]),
                ctx.store.read_npy(key("confirm_losses")),
                ctx.store.read_npy(key("confirm_thetas")).astype(np.float64),
                info["train_rows"],
            )
        )
        seconds += info["seconds"]
    on_epoch({**(job.progress or {}), "confirm_chunks_done": len(chunks)})
    staged = lambda what: ctx.store.job_key(job.id, what, job.staged_attempt)
    t0 = time.perf_counter()
    c = judge(
        setup.graph,
        ctx.store.read_npy(staged("confirm_pairs")),
        VariantFits.concat(parts),
        setup.spec.confirm.min_effect,
    )
    metrics = ctx.store.read_json(staged("metrics"))
    seconds += time.perf_counter() - t0
    # the base model's facts, staged with it (none from before confirm_model existed)
    base = metrics["confirm"] or {"refine_epochs": 0, "refine_seconds": 0.0, "base_test_loss": None}
    metrics["confirm"] = {**confirm_metrics(setup, c, base, seconds), "chunks": len(chunks)}
    edges = ctx.store.read_parquet(staged("edges"))
    ctx.store.write_edges(job.id, with_confirmation(edges, c), token)
    ctx.store.write_json(ctx.store.job_key(job.id, "metrics", token), metrics)
    for what in ("weights", "nodes", "model", "regressor"):  # as staged
        ctx.store.write_bytes(
            ctx.store.job_key(job.id, what, token), ctx.store.read_bytes(staged(what))
        )
    return metrics["device"]


def store_replica(ctx: ServiceContext, job_id: str, run: Any, scorer: str, attempt: str) -> None:
    """Write what the job of a replica needs to combine it (a ReplicaRun): the scorer's
    scores and p-values, W, metrics and model states."""
    import numpy as np

    store = ctx.store
    key = lambda what: store.job_key(job_id, what, attempt)
    scores = run.scores[scorer]
    store.write_npy(key("replica_scores"), np.asarray(scores.scores, dtype=np.float64))
    store.write_npy(key("replica_p_values"), np.asarray(scores.p_values, dtype=np.float64))
    store.write_npy(key("weights"), np.asarray(run.weights, dtype=np.float32))
    store.write_json(key("metrics"), {"replica": run.replica, "seed": run.seed, **run.metrics})
    _write_states(ctx, job_id, attempt, model=run.model_state, regressor=run.regressor_state)


def _load_replicas(ctx: ServiceContext, job_id: str, setup: Any) -> list[Any]:
    """The job's replicas as ReplicaRuns, from their published files. Only replica 0's
    model and regressor states are read (the job's result keeps them; its model is
    rebuilt when the confirmation needs it); the others' stay on disk."""
    import torch

    from gsnn_edges.inference.scorers import PairScores
    from gsnn_edges.train import ReplicaRun

    with ctx.db.session() as session:
        children = repo.replica_jobs(session, job_id)
    runs = []
    for child in children:  # one per replica: a handful of file reads
        key = lambda what, c=child: ctx.store.job_key(c.id, what, c.result_attempt)
        metrics = ctx.store.read_json(key("metrics"))
        first = metrics["replica"] == 0
        states = [
            torch.load(io.BytesIO(ctx.store.read_bytes(key(w))), weights_only=True) if first else {}
            for w in ("model", "regressor")
        ]
        scores = PairScores(
            ctx.store.read_npy(key("replica_scores")), ctx.store.read_npy(key("replica_p_values"))
        )
        run = ReplicaRun(
            replica=metrics.pop("replica"),
            seed=metrics.pop("seed"),
            scores={setup.spec.regressor.scorer: scores},
            weights=ctx.store.read_npy(key("weights")),
            metrics=metrics,
            model_state=states[0],
            regressor_state=states[1],
        )
        if run.replica == 0 and setup.spec.confirm.top:
            run.model = setup.build_model()
            run.model.load_state_dict(run.model_state)
        runs.append(run)
    return runs


def _write_states(ctx: ServiceContext, job_id: str, attempt: str | None, **states: dict) -> None:
    """Each ``what=state_dict`` as the job file ``what`` (``JOB_FILES``) of the attempt, on
    the CPU: a worker without the GPU the job ran on can load it."""
    import torch

    for what, state in states.items():
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
        ctx.store.write_bytes(ctx.store.job_key(job_id, what, attempt), buf.getvalue())


def _cancelled(when: str = "cancelled before training started") -> Exception:
    from gsnn_edges.train import TrainingCancelled

    return TrainingCancelled(when)


def store_results(ctx: ServiceContext, job_id: str, result: Any, attempt: str | None) -> None:
    """Write W, node names, the edge table, metrics and model states of a TrainResult
    into the attempt's own folder (``attempt``: its claim token)."""
    import numpy as np

    store = ctx.store
    key = lambda job, what: store.job_key(job, what, attempt)
    store.write_npy(key(job_id, "weights"), np.asarray(result.weights, dtype=np.float32))
    store.write_json(key(job_id, "nodes"), list(result.node_names))
    # the edge table in three sort orders with row-group statistics, so pages and node
    # filters read a few row groups (service.edge_store); the metrics carry best_epoch,
    # history, device
    store.write_edges(job_id, result.edges, attempt)
    store.write_json(key(job_id, "metrics"), result.metrics)
    _write_states(ctx, job_id, attempt, model=result.model_state, regressor=result.regressor_state)
