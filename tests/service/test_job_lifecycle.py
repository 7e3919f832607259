"""Job lifecycle in the repository: claims, forward-only status, idempotency, reaper."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import torch

from gsnn_edges.service import repository as repo
from gsnn_edges.service.datasets import create_dataset
from gsnn_edges.service.errors import ConflictError, IdempotencyMismatchError
from gsnn_edges.service.graphs import create_graph
from gsnn_edges.service.jobs import cancel_job, epoch_history, get_job, submit_job
from gsnn_edges.service.models import utcnow
from gsnn_edges.service.reaper import reap_stale_jobs

from patching import patched

SPEC = {"model": {"channels": 4, "layers": 3}, "training": {"epochs": 2}}


@pytest.fixture
def job_inputs(ctx, bench, frame):
    graph = create_graph(ctx, "t1", "g", bench.partial.to_json())
    data = frame.to_csv(index=False).encode()
    dataset = create_dataset(ctx, "t1", graph.id, data, "d.csv")
    return graph.id, dataset.id


def _submit(ctx, job_inputs, key=None, spec=SPEC):
    return submit_job(ctx, "t1", *job_inputs, spec, key)


def _claim(ctx, job_id, token):
    with ctx.db.session() as s:
        return repo.claim_job(s, job_id, token, "cpu")


def test_jobs_submit_enqueues_once(ctx, queue, job_inputs) -> None:
    job = _submit(ctx, job_inputs).job
    assert job.status == "queued" and queue == [job.id]


def test_jobs_claim_is_exclusive_and_terminal_is_final(ctx, job_inputs) -> None:
    job = _submit(ctx, job_inputs).job
    assert _claim(ctx, job.id, "a") and not _claim(ctx, job.id, "b")
    with ctx.db.session() as s:
        assert not repo.finish_job(s, job.id, "b", "failed")  # not the owner
        assert repo.finish_job(s, job.id, "a", "succeeded", device="cpu")
        repo.request_cancel(s, job.id)  # status only moves forward
    assert not _claim(ctx, job.id, "c")
    assert get_job(ctx, "t1", job.id).status == "succeeded"
    with pytest.raises(ConflictError, match="already succeeded"):
        cancel_job(ctx, "t1", job.id)


def test_jobs_cancel_queued_never_starts(ctx, job_inputs) -> None:
    job = _submit(ctx, job_inputs).job
    assert cancel_job(ctx, "t1", job.id).status == "cancelled"
    assert not _claim(ctx, job.id, "a")


def test_jobs_cancel_running_sets_flag(ctx, job_inputs) -> None:
    job = _submit(ctx, job_inputs).job
    assert _claim(ctx, job.id, "a")
    assert cancel_job(ctx, "t1", job.id).status == "running"
    with ctx.db.session() as s:
        assert repo.control_state(s, job.id, "a").cancel_requested


def test_jobs_idempotency_key_same_body_same_job(ctx, queue, job_inputs) -> None:
    first = _submit(ctx, job_inputs, key="k")
    again = _submit(ctx, job_inputs, key="k")
    assert again.replayed and again.job.id == first.job.id and len(queue) == 1
    with pytest.raises(IdempotencyMismatchError, match="different request body"):
        _submit(ctx, job_inputs, key="k", spec={"training": {"epochs": 3}})


def test_jobs_reaper_requeues_then_fails_lost_job(ctx, queue, job_inputs) -> None:
    job = _submit(ctx, job_inputs).job
    assert _claim(ctx, job.id, "a")
    later = utcnow() + timedelta(seconds=60)
    assert reap_stale_jobs(ctx) == {"requeued": 0, "failed": 0, "cancelled": 0, "resent": 0}
    assert reap_stale_jobs(ctx, now=later)["requeued"] == 1
    assert queue == [job.id, job.id] and get_job(ctx, "t1", job.id).status == "running"
    assert _claim(ctx, job.id, "b")  # second attempt
    assert reap_stale_jobs(ctx, now=later + timedelta(seconds=60))["failed"] == 1
    final = get_job(ctx, "t1", job.id)
    assert final.status == "failed" and final.attempts == 2
    assert final.error["type"] == "WorkerLost" and "heartbeat" in final.error["message"]


def test_jobs_reaper_cancels_lost_job_with_cancel_request(ctx, job_inputs) -> None:
    job = _submit(ctx, job_inputs).job
    assert _claim(ctx, job.id, "a")
    cancel_job(ctx, "t1", job.id)
    assert reap_stale_jobs(ctx, now=utcnow() + timedelta(seconds=60))["cancelled"] == 1
    assert get_job(ctx, "t1", job.id).status == "cancelled"


def test_jobs_reaper_resends_a_lost_message_with_backoff(ctx, queue, job_inputs) -> None:
    """A queued job whose message was lost (here: the queue dropped it) is sent again
    after stale_after_s (5 s here), then at doubling intervals, never once per period;
    the duplicates are harmless because only one claim succeeds."""
    job = _submit(ctx, job_inputs).job
    queue.clear()  # the broker lost the message
    t0 = utcnow()
    at = lambda s: t0 + timedelta(seconds=s)
    assert reap_stale_jobs(ctx, now=at(4))["resent"] == 0  # not overdue yet
    assert reap_stale_jobs(ctx, now=at(6))["resent"] == 1 and queue == [job.id]
    resent = [reap_stale_jobs(ctx, now=at(s))["resent"] for s in range(7, 40)]
    # after the first re-send at 6 s: the next waits 5 * 2 s, then 5 * 4 s
    assert sum(resent) == 2 and queue == [job.id] * 3
    assert _claim(ctx, job.id, "a") and not _claim(ctx, job.id, "b")
    assert reap_stale_jobs(ctx, now=at(41))["resent"] == 0  # claimed: nothing to resend


def test_jobs_reaper_resends_a_job_whose_enqueue_never_happened(ctx, queue, job_inputs) -> None:
    """The API died between committing the job and sending its message (sent_at empty):
    the job's creation time starts the clock."""
    job = _submit(ctx, job_inputs).job
    with ctx.db.session() as s:
        repo._update(s, job.id, [], sends=0, sent_at=None)
    queue.clear()
    assert reap_stale_jobs(ctx, now=utcnow() + timedelta(seconds=6))["resent"] == 1
    assert queue == [job.id] and get_job(ctx, "t1", job.id).sends == 1


def test_jobs_released_job_is_not_requeued_every_period(ctx, queue, job_inputs) -> None:
    job = _submit(ctx, job_inputs).job
    assert _claim(ctx, job.id, "a")
    t0 = utcnow()
    assert reap_stale_jobs(ctx, now=t0 + timedelta(seconds=6))["requeued"] == 1
    queue.clear()
    counts = [reap_stale_jobs(ctx, now=t0 + timedelta(seconds=s)) for s in range(7, 20)]
    assert sum(c["requeued"] for c in counts) == 0  # the old reaper re-released it each time
    assert sum(c["resent"] for c in counts) == 1 and queue == [job.id]  # one resend at +10 s


def test_jobs_fenced_out_worker_cannot_publish_or_overwrite(ctx, job_inputs) -> None:
    """Worker A loses its claim (paused past the stale timeout), worker B re-runs the job
    and publishes; when A wakes and writes its own results and tries to finish, the
    served files stay B's, byte for byte (issue 9, item 10)."""
    import numpy as np

    from gsnn_edges.inference.edge_table import edge_table
    from gsnn_edges.service.results import load_weights, result_key
    from gsnn_edges.service.runner import store_results

    def result(fill: float):
        class R:  # the attributes store_results reads from a TrainResult
            weights = np.full((2, 2), fill, dtype=np.float32)
            node_names = ["f0", "f1"]
            edges = edge_table(
                np.full((2, 2), fill), node_names, np.eye(2, dtype=bool), np.full((2, 2), 0.5)
            )
            metrics = {"fill": fill}
            model_state = {}
            regressor_state = {}

        return R()

    job = _submit(ctx, job_inputs).job
    assert _claim(ctx, job.id, "a")
    assert reap_stale_jobs(ctx, now=utcnow() + timedelta(seconds=60))["requeued"] == 1
    assert _claim(ctx, job.id, "b")
    store_results(ctx, job.id, result(2.0), attempt="b")
    with ctx.db.session() as s:
        assert repo.finish_job(s, job.id, "b", "succeeded", device="cpu")
    published = ctx.store.read_bytes(result_key(ctx, "t1", job.id, "weights"))
    store_results(ctx, job.id, result(1.0), attempt="a")  # A wakes up and writes
    with ctx.db.session() as s:
        assert not repo.finish_job(s, job.id, "a", "succeeded", device="cpu")
    assert get_job(ctx, "t1", job.id).result_attempt == "b"
    assert ctx.store.read_bytes(result_key(ctx, "t1", job.id, "weights")) == published
    assert float(load_weights(ctx, "t1", job.id)[1][0, 0]) == 2.0


def test_jobs_one_clock_a_skewed_worker_clock_cannot_reap_a_live_job(
    tmp_path, pg_url, bench, frame, monkeypatch
) -> None:
    """Heartbeats and the reaper's cutoff both read PostgreSQL's clock: a worker whose own
    clock runs an hour late keeps its job alive, and a reaper whose clock runs an hour
    early does not reap it."""
    from gsnn_edges.service.context import ServiceContext
    from gsnn_edges.service.settings import Settings

    settings = Settings(data_dir=tmp_path / "d", database_url=pg_url, api_keys="", stale_after_s=5)
    queue: list[str] = []
    ctx = ServiceContext.from_settings(settings, enqueue=queue.append)
    try:
        graph = create_graph(ctx, "t1", "g", bench.partial.to_json())
        dataset = create_dataset(ctx, "t1", graph.id, frame.to_csv(index=False).encode(), "d.csv")
        job = submit_job(ctx, "t1", graph.id, dataset.id, SPEC).job
        hour = timedelta(hours=1)
        monkeypatch.setattr(repo, "utcnow", lambda: utcnow() - hour)  # the worker's clock
        assert _claim(ctx, job.id, "a")
        with ctx.db.session() as s:
            assert repo.heartbeat(s, job.id, "a")
        monkeypatch.setattr(repo, "utcnow", lambda: utcnow() + hour)  # the reaper's clock
        assert reap_stale_jobs(ctx)["requeued"] == 0
        assert get_job(ctx, "t1", job.id).status == "running"
        monkeypatch.undo()
        # the heartbeat is the database's time: stale once the database's clock moves on
        with ctx.db.session() as s:
            later = repo.db_now(s) + timedelta(seconds=6)
        assert reap_stale_jobs(ctx, now=later)["requeued"] == 1
    finally:
        ctx.db.dispose()


def test_jobs_fair_turns_a_backlog_does_not_starve_another_tenant(ctx, queue, bench, frame):
    """Tenant A queues 4 jobs, then B one: queue messages are turns, so B's job runs on
    the second turn, not the fifth, and every message still runs one job."""
    from gsnn_edges.service.runner import run_next_job

    tiny = {"model": {"channels": 2, "layers": 2}, "training": {"epochs": 1}}
    jobs = {}
    for tenant, count in (("A", 4), ("B", 1)):
        graph = create_graph(ctx, tenant, "g", bench.partial.to_json())
        data = create_dataset(ctx, tenant, graph.id, frame.to_csv(index=False).encode(), "d.csv")
        jobs[tenant] = [
            submit_job(ctx, tenant, graph.id, data.id, tiny).job.id for _ in range(count)
        ]
    assert queue == [*jobs["A"], *jobs["B"]]
    order = []
    for message in list(queue):  # one worker taking the messages in queue order
        assert run_next_job(ctx, message) == "succeeded"
        done = {j.id: j.started_at for t in jobs for j in [get_job(ctx, t, i) for i in jobs[t]]}
        order = sorted((at, job_id) for job_id, at in done.items() if at is not None)
    ran = [job_id for _, job_id in order]
    assert ran == [jobs["A"][0], jobs["B"][0], *jobs["A"][1:]]
    assert run_next_job(ctx, jobs["A"][0]) == "skipped"  # a re-sent message: nothing left


# A worker process with what it has loaded before a job; its memory budget is what it
# holds now plus 20 MiB, less than the job below allocates.
TIGHT_WORKER = """
import sys
import pyarrow, torch
from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.runner import _data_segment_bytes, run_job
from gsnn_edges.service.settings import Settings

budget = _data_segment_bytes() / 2**20 + 20
settings = Settings(data_dir=sys.argv[1], api_keys="", worker_memory_mb=budget)
print(run_job(ServiceContext.from_settings(settings), sys.argv[2]))
"""


def test_jobs_out_of_memory_fails_once_with_a_reason(settings, ctx, job_inputs) -> None:
    """A CPU job that allocates past GSNN_EDGES_WORKER_MEMORY_MB ends failed, 'out of
    memory', on its first attempt (the reaper does not re-run it)."""
    import subprocess
    import sys

    big = {"model": {"channels": 128, "layers": 4}, "training": {"batch_size": 256}}
    job = _submit(ctx, job_inputs, spec={**big, "training": {**big["training"], "device": "cpu"}})
    job_id = job.job.id
    out = subprocess.run(
        [sys.executable, "-c", TIGHT_WORKER, str(settings.data_dir), job_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip().splitlines()[-1:] == ["failed"], out.stderr[-2000:]
    failed = get_job(ctx, "t1", job_id)
    assert failed.attempts == 1 and failed.error["type"] == "OutOfMemory", failed.error
    assert failed.error["message"].startswith("out of memory: the job needed more than")
    assert "GSNN_EDGES_WORKER_MEMORY_MB" in failed.error["message"]
    assert reap_stale_jobs(ctx, now=utcnow() + timedelta(seconds=60))["requeued"] == 0


REPLICATED = {**SPEC, "replicas": 2}


def test_jobs_replicas_train_apart_then_the_job_combines_them(ctx, queue, job_inputs) -> None:
    from gsnn_edges.service.results import EdgeQuery, edge_page, load_metrics
    from gsnn_edges.service.runner import run_job

    job = _submit(ctx, job_inputs, spec=REPLICATED).job
    replicas = [c.id for c in job.children]
    assert [c.replica for c in job.children] == [0, 1] and queue == replicas  # not the job
    with ctx.db.session() as s:
        assert [j.id for j in repo.list_jobs(s, "t1", 10, 0)[0]] == [job.id]
        assert repo.get_job(s, "t1", replicas[0]) is None  # served inside their job
        assert repo.count_active_jobs(s, "t1") == 1
    assert run_job(ctx, job.id) == "skipped"  # waits for its replicas
    assert run_job(ctx, replicas[0]) == "succeeded"
    assert get_job(ctx, "t1", job.id).status == "running" and queue == replicas
    later = utcnow() + timedelta(seconds=60)
    reap_stale_jobs(ctx, now=later)
    assert job.id not in queue  # no message for a job whose replicas are not done
    assert run_job(ctx, replicas[1]) == "succeeded"  # and, the last one, combined them
    assert job.id not in queue and run_job(ctx, job.id) == "skipped"
    done = get_job(ctx, "t1", job.id)
    assert done.status == "succeeded" and [c.status for c in done.children] == ["succeeded"] * 2
    assert [c.progress["stage"] for c in done.children] == ["scoring"] * 2
    assert done.progress["stage"] == "combining" and done.progress["epoch"] == 2
    replica, epochs = epoch_history(ctx, "t1", job.id, replica=1)
    assert replica == 1 and [e["epoch"] for e in epochs] == [1, 2]
    _, first = epoch_history(ctx, "t1", job.id)  # replica 0, other random numbers
    assert [e["train_loss"] for e in first] != [e["train_loss"] for e in epochs]
    metrics = load_metrics(ctx, "t1", job.id)
    assert metrics["ensemble"]["replicas"] == 2 and len(metrics["replicas"]) == 2
    _, items = edge_page(ctx, "t1", job.id, EdgeQuery(), 0, 5)
    assert all(0 <= i["stability"] <= 1 and i["score_se"] >= 0 for i in items)

    def state(j):
        raw = ctx.store.read_bytes(ctx.store.job_key(j.id, "model", j.result_attempt))
        return torch.load(io.BytesIO(raw), weights_only=True)

    published, first = state(done), state(done.children[0])  # the job keeps replica 0's
    assert published.keys() == first.keys()
    assert all(torch.equal(published[k], first[k]) for k in first)


def test_jobs_a_join_whose_last_replica_worker_died_is_sent_by_the_reaper(
    ctx, queue, job_inputs
) -> None:
    job = _submit(ctx, job_inputs, spec=REPLICATED).job
    with ctx.db.session() as s:
        for child in job.children:  # both succeed, but the worker dies before the join
            assert repo.claim_job(s, child.id, "t", "cpu")
            assert repo.finish_job(s, child.id, "t", "succeeded")
    queue.clear()
    assert reap_stale_jobs(ctx, now=utcnow() + timedelta(seconds=60))["resent"] == 1
    assert queue == [job.id]


def test_jobs_a_failed_replica_fails_its_job_and_cancels_the_others(ctx, queue, job_inputs) -> None:
    from gsnn_edges.service.runner import run_job

    job = _submit(ctx, job_inputs, spec={**SPEC, "replicas": 3}).job
    replicas = [c.id for c in job.children]
    ctx.store.path(ctx.store.dataset_key(job_inputs[1])).unlink()  # storage lost the data
    assert run_job(ctx, replicas[1]) == "failed"
    failed = get_job(ctx, "t1", job.id)
    assert failed.status == "failed" and failed.error["message"].startswith("replica 1 failed:")
    assert [c.status for c in failed.children] == ["cancelled", "failed", "cancelled"]
    assert run_job(ctx, replicas[0]) == "skipped" and job.id not in queue


def test_jobs_cancel_reaches_every_replica(ctx, job_inputs) -> None:
    job = _submit(ctx, job_inputs, spec=REPLICATED).job
    first, second = (c.id for c in job.children)
    assert _claim(ctx, first, "a")
    with ctx.db.session() as s:
        repo.start_parent(s, job.id)
    cancelled = cancel_job(ctx, "t1", job.id)
    assert cancelled.status == "cancelled"
    assert [c.status for c in cancelled.children] == ["running", "cancelled"]
    with ctx.db.session() as s:
        assert repo.control_state(s, first, "a").cancel_requested  # stops at its next epoch


def test_jobs_a_replica_lost_for_good_fails_its_job(ctx, queue, job_inputs) -> None:
    job = _submit(ctx, job_inputs, spec=REPLICATED).job
    first = job.children[0].id
    for token in ("a", "b"):  # max_attempts = 2 claims, both workers lost
        assert _claim(ctx, first, token)
        reap_stale_jobs(ctx, now=utcnow() + timedelta(seconds=60))
    failed = get_job(ctx, "t1", job.id)
    assert failed.status == "failed" and failed.error["type"] == "WorkerLost"
    assert failed.error["message"].startswith("replica 0 failed: the worker stopped")


CONFIRMED = {**SPEC, "confirm": {"top": 5}}


def _drain(ctx, queue) -> list[str]:
    """Run every queued message in order (a worker), messages sent meanwhile included."""
    from gsnn_edges.service.runner import run_job

    outcomes = []
    while queue:
        outcomes.append(run_job(ctx, queue.pop(0)))
    return outcomes


def _confirmed_rows(ctx, job_id):
    from gsnn_edges.service.results import EdgeQuery, edge_page

    _, items = edge_page(ctx, "t1", job_id, EdgeQuery(), 0, 1000)
    return {(i["src"], i["dst"]): i for i in items if i["confirmed"]}


@pytest.mark.parametrize("replicas", [1, 2])
def test_jobs_confirmation_fans_out_to_chunk_jobs_and_merges_as_one_process(
    settings, queue, bench, frame, replicas
) -> None:
    """With GSNN_EDGES_CONFIRM_CHUNKS = 3 the job stages its candidates, 3 chunk jobs fit
    them (internal: not listed, not replicas) and the last one merges them: the table's
    confirmation is the one the job confirms in its own process (chunks = 1), the
    job's epoch curve survives its second claim, and its model is the staged one."""
    from gsnn_edges.service.context import ServiceContext
    from gsnn_edges.service.results import load_metrics

    spec = {**CONFIRMED, "replicas": replicas}
    results = {}
    for chunks in (1, 3):
        own = settings.model_copy(
            update={"confirm_chunks": chunks, "data_dir": settings.data_dir / str(chunks)}
        )
        ctx = ServiceContext.from_settings(own, enqueue=queue.append)
        try:
            inputs = create_graph(ctx, "t1", "g", bench.partial.to_json()).id
            dataset = create_dataset(ctx, "t1", inputs, frame.to_csv(index=False).encode(), "d.csv")
            job = submit_job(ctx, "t1", inputs, dataset.id, spec).job
            outcomes = _drain(ctx, queue)
            done = get_job(ctx, "t1", job.id)
            assert done.status == "succeeded", done.error
            with ctx.db.session() as s:
                chunk_jobs = repo.chunk_jobs(s, job.id)
                assert [j.id for j in repo.list_jobs(s, "t1", 10, 0)[0]] == [job.id]
            assert len(done.children) == (replicas if replicas > 1 else 0)
            metrics = load_metrics(ctx, "t1", job.id)
            _, epochs = epoch_history(ctx, "t1", job.id)
            assert [e["epoch"] for e in epochs] == [1, 2]
            results[chunks] = (_confirmed_rows(ctx, job.id), metrics["confirm"])
            if chunks == 3:
                # the last replica's worker runs the job, which stages, within its run
                first = ["succeeded"] * replicas if replicas > 1 else ["staged"]
                assert outcomes == [*first, *["succeeded"] * 3]
                assert [c.confirm_chunk for c in chunk_jobs] == [0, 1, 2]
                assert all(c.status == "succeeded" and c.replica is None for c in chunk_jobs)
                assert done.attempts == 2 and done.progress["confirm_chunks_done"] == 3
                assert metrics["confirm"]["chunks"] == 3
                assert done.result_attempt != done.staged_attempt  # the staged copy is gone
                assert not ctx.store.path(
                    ctx.store.attempt_folder(job.id, done.staged_attempt)
                ).exists()
            else:
                assert not chunk_jobs and "chunks" not in metrics["confirm"]
            model = ctx.store.read_bytes(ctx.store.job_key(job.id, "model", done.result_attempt))
            results[chunks] = (*results[chunks], model)
        finally:
            ctx.db.dispose()
    (alone, alone_info, model), (fanned, fanned_info, fanned_model) = results[1], results[3]
    assert fanned_model == model  # the trained model, published unchanged (not the refined)
    assert len(alone) == 5 and alone.keys() == fanned.keys()
    # equal up to float32 rounding of the per-row losses, which the chunks' other batch
    # shapes change: about 1e-7 of effect, 0.01 of p-value where the effect is that small
    for pair, row in alone.items():
        assert fanned[pair]["effect"] == pytest.approx(row["effect"], rel=1e-3, abs=2e-7)
        for col in ("confirm_p_value", "confirm_q_value"):
            assert fanned[pair][col] == pytest.approx(row[col], abs=0.02), (pair, col)
        assert fanned[pair]["equivalents"] == row["equivalents"]
    same = ("n_confirmed", "discoveries_q_0_1", "train_rows", "heldout_rows", "equivalents")
    for key in (*same, "refine_epochs", "min_effect", "effect_margin"):
        assert fanned_info[key] == alone_info[key]
    # the chunks fitted on the refined model the job staged, which the one process refines
    # alike
    assert fanned_info["base_test_loss"] == pytest.approx(alone_info["base_test_loss"], rel=1e-6)
    assert fanned_info["refine_seconds"] > 0


def _staged(ctx, queue, job_inputs):
    from gsnn_edges.service.runner import run_job

    job = _submit(ctx, job_inputs, spec=CONFIRMED).job
    assert run_job(ctx, queue.pop()) == "staged"
    with ctx.db.session() as s:
        return job, [c.id for c in repo.chunk_jobs(s, job.id)]


def _staged_key(ctx, job):
    """``what -> the staged job's file key``."""
    job = get_job(ctx, "t1", job.id)
    return lambda what: ctx.store.job_key(job.id, what, job.staged_attempt)


@pytest.mark.parametrize("settings_update", [{"confirm_chunks": 4}])
def test_jobs_stage_the_refined_model_their_chunks_fit_on(ctx, queue, job_inputs) -> None:
    """The job refines its trained model once and stages the copy, on the CPU, for its
    chunks: the same state refining the staged trained model gives."""
    from gsnn_edges.service.runner import job_setup
    from gsnn_edges.train import refine_for_confirmation

    job, _ = _staged(ctx, queue, job_inputs)
    key = _staged_key(ctx, job)
    load = lambda what: torch.load(io.BytesIO(ctx.store.read_bytes(key(what))), weights_only=True)
    trained, refined = load("model"), load("confirm_model")
    setup = job_setup(ctx, get_job(ctx, "t1", job.id))
    model = setup.build_model()
    model.load_state_dict(trained)
    again = refine_for_confirmation(setup, model).state_dict()
    assert refined.keys() == trained.keys() == again.keys()
    assert all(v.device.type == "cpu" for v in refined.values())
    assert any(not torch.equal(refined[k], trained[k]) for k in refined)
    assert all(torch.equal(refined[k], again[k].cpu()) for k in refined)
    assert get_job(ctx, "t1", job.id).progress["stage"] == "confirming"


@pytest.mark.parametrize("settings_update", [{"confirm_chunks": 2}])
def test_jobs_staged_before_the_refined_model_confirm_on_their_trained_model(
    ctx, queue, job_inputs
) -> None:
    """A job staged by a version without ``confirm_model`` (an upgrade mid-job): its chunks
    fit the trained model and the merge reports no refining, instead of failing."""
    from gsnn_edges.service.results import load_metrics
    from gsnn_edges.service.runner import run_job

    job, chunks = _staged(ctx, queue, job_inputs)
    key = _staged_key(ctx, job)
    ctx.store.path(key("confirm_model")).unlink()
    metrics = ctx.store.read_json(key("metrics"))
    ctx.store.write_json(key("metrics"), {**metrics, "confirm": None})
    queue.clear()
    assert [run_job(ctx, c) for c in chunks] == ["succeeded"] * 2
    assert get_job(ctx, "t1", job.id).status == "succeeded"
    confirm = load_metrics(ctx, "t1", job.id)["confirm"]
    assert confirm["refine_epochs"] == 0 and confirm["base_test_loss"] is None
    assert len(_confirmed_rows(ctx, job.id)) == 5


@pytest.mark.parametrize("settings_update", [{"confirm_chunks": 4}])
def test_jobs_a_failed_confirmation_chunk_fails_its_job_and_cancels_the_others(
    ctx, queue, job_inputs
) -> None:
    from gsnn_edges.service.runner import run_job

    job, chunks = _staged(ctx, queue, job_inputs)
    assert len(chunks) == 4 and queue == chunks
    waiting = get_job(ctx, "t1", job.id)
    assert waiting.status == "running" and waiting.claim_token is None
    assert run_job(ctx, job.id) == "skipped"  # waits for its chunks
    staged = ctx.store.job_key(job.id, "confirm_pairs", waiting.staged_attempt)
    ctx.store.path(staged).unlink()  # storage lost the candidates
    assert run_job(ctx, chunks[2]) == "failed"
    failed = get_job(ctx, "t1", job.id)
    assert failed.status == "failed"
    assert failed.error["message"].startswith("confirmation chunk 2 failed:")
    with ctx.db.session() as s:
        states = [c.status for c in repo.chunk_jobs(s, job.id)]
    assert states == ["cancelled", "cancelled", "failed", "cancelled"]


@pytest.mark.parametrize("settings_update", [{"confirm_chunks": 4}])
def test_jobs_cancel_reaches_every_confirmation_chunk(ctx, queue, job_inputs) -> None:
    job, chunks = _staged(ctx, queue, job_inputs)
    assert _claim(ctx, chunks[0], "a")
    assert cancel_job(ctx, "t1", job.id).status == "cancelled"
    with ctx.db.session() as s:
        states = [c.status for c in repo.chunk_jobs(s, job.id)]
        assert repo.control_state(s, chunks[0], "a").cancel_requested
    assert states == ["running", "cancelled", "cancelled", "cancelled"]


@pytest.mark.parametrize("settings_update", [{"confirm_chunks": 4, "max_attempts": 3}])
def test_jobs_a_staged_job_is_merged_after_its_merging_worker_died(
    ctx, queue, job_inputs, settings_update
) -> None:
    """The worker that finished the last chunk dies before (or while) merging: the
    reaper sends the job again, and the merge runs from the staged files. (The merge's
    claims count with the training's against max_attempts.)"""
    from gsnn_edges.service import runner
    from gsnn_edges.service.runner import run_job

    job, chunks = _staged(ctx, queue, job_inputs)
    queue.clear()
    assert [run_job(ctx, c) for c in chunks[:-1]] == ["succeeded"] * 3
    # the last chunk's worker dies between finishing it and merging
    with patched(runner, settle_child=lambda ctx, job_id: None):
        done = run_job(ctx, chunks[-1]) == "succeeded"
    assert get_job(ctx, "t1", job.id).status == "running"
    assert done and not queue
    assert reap_stale_jobs(ctx, now=utcnow() + timedelta(seconds=60))["resent"] == 1
    assert queue == [job.id]
    assert _claim(ctx, job.id, "dies")  # a merge that dies, reaped and re-sent
    reap_stale_jobs(ctx, now=utcnow() + timedelta(seconds=60))
    assert queue == [job.id, job.id] and run_job(ctx, queue.pop()) == "succeeded"
    assert len(_confirmed_rows(ctx, job.id)) == 5


@pytest.mark.parametrize("settings_update", [{"confirm_chunks": 4}])
def test_jobs_confirmation_chunks_run_before_the_tenants_later_jobs(ctx, queue, job_inputs):
    """A worker's fair pick takes a staged job's chunks before jobs submitted after it
    (one worker would otherwise train every later job before finishing this one)."""
    from gsnn_edges.service.runner import run_job

    job = _submit(ctx, job_inputs, spec=CONFIRMED).job
    later = _submit(ctx, job_inputs).job
    assert run_job(ctx, job.id) == "staged"
    with ctx.db.session() as s:
        chunks = [c.id for c in repo.chunk_jobs(s, job.id)]
        assert repo.next_fair_job(s) in chunks
        assert repo.load_job(s, later.id).status == "queued"


@pytest.mark.parametrize("settings_update", [{"confirm_chunks": 4}])
def test_jobs_cancelled_while_scoring_ends_cancelled_instead_of_staging(ctx, queue, job_inputs):
    """A cancellation that arrives after the last epoch's check but before the staging:
    the job ends cancelled and has no chunks (staged, it could never be merged)."""
    from gsnn_edges.service.runner import run_job

    job = _submit(ctx, job_inputs, spec=CONFIRMED).job
    stage = repo.stage_confirmation

    def cancel_then_stage(session, job_id, *args):
        cancel_job(ctx, "t1", job_id)
        return stage(session, job_id, *args)

    with patched(repo, stage_confirmation=cancel_then_stage):
        assert run_job(ctx, queue.pop()) == "cancelled"
    with ctx.db.session() as s:
        assert repo.chunk_jobs(s, job.id) == []
    assert get_job(ctx, "t1", job.id).status == "cancelled" and not queue
