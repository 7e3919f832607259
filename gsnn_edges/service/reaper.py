"""The stale-job reaper: no job stays ``running`` after its worker died, and no job
waits forever for a lost queue message.

A running job whose heartbeat is older than ``stale_after_s`` lost its worker (killed,
out of memory, machine gone). The reaper drops the claim and re-queues it while
``attempts < max_attempts`` (status stays ``running``, so it only moves forward), and
otherwise fails it with a reason. A job whose cancellation was requested is cancelled.
A child job given up (a replica, a confirmation chunk) fails the job it belongs to
(``service.children``).

A queued (or released) job whose last message is older than ``stale_after_s`` may have
lost it (API killed between commit and enqueue, broker flushed or restarted, a crash
after the file transport consumed it): the reaper sends it again, with backoff (the
``k``-th re-send waits ``stale_after_s * 2^(k-1)`` after the previous message), so a job
that is merely waiting in a busy queue gets a handful of duplicate messages over hours,
not one per reaper period. Duplicates are harmless: a claim succeeds once.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from gsnn_edges.job_status import JobStatus
from gsnn_edges.service import repository as repo
from gsnn_edges.service.children import settle_child
from gsnn_edges.service.context import ServiceContext

log = logging.getLogger(__name__)


def _lost_error(ctx: ServiceContext, attempts: int) -> dict[str, str]:
    s = ctx.settings
    return {
        "type": "WorkerLost",
        "message": f"the worker stopped sending heartbeats for over {s.stale_after_s:g} s "
        f"on each of {attempts} attempt(s) (max {s.max_attempts}); the job was given up. "
        "Check the worker logs (killed, out of memory, or time limit?) and resubmit.",
    }


def reap_stale_jobs(ctx: ServiceContext, now: datetime | None = None) -> dict[str, int]:
    """One reaper pass. Safe to run concurrently from several processes.

    Returns:
        Counts of ``requeued``, ``failed`` and ``cancelled`` jobs and of ``resent``
        messages.
    """
    counts = {"requeued": 0, "failed": 0, "cancelled": 0, "resent": 0}
    with ctx.db.session() as session:
        now = now or repo.db_now(session)  # the database's clock, as the heartbeats
        cutoff = now - timedelta(seconds=ctx.settings.stale_after_s)
        stale_jobs = repo.find_stale_jobs(session, cutoff)
    for stale in stale_jobs:
        with ctx.db.session() as session:
            if stale.cancel_requested:
                done = repo.end_stale(session, stale, cutoff, JobStatus.cancelled, None)
                counts["cancelled"] += done
            elif stale.attempts >= ctx.settings.max_attempts:
                error = _lost_error(ctx, stale.attempts)
                if repo.end_stale(session, stale, cutoff, JobStatus.failed, error):
                    counts["failed"] += 1
                    settle_child(ctx, stale.id)  # a lost child fails its job
            elif repo.release_stale(session, stale, cutoff, now):
                log.warning("re-queueing job %s (attempt %d lost)", stale.id, stale.attempts)
                ctx.enqueue(stale.id)
                counts["requeued"] += 1
    counts["resent"] = _resend_lost_messages(ctx, now)
    return counts


# the longest wait between two re-sends of one job's message, in stale periods
_MAX_BACKOFF = 64


def _resend_lost_messages(ctx: ServiceContext, now: datetime) -> int:
    stale = ctx.settings.stale_after_s
    with ctx.db.session() as session:
        overdue = repo.find_unclaimed_jobs(session, now - timedelta(seconds=stale))
    resent = 0
    for job in overdue:  # a loop over overdue jobs, not a per-request path
        wait = stale * min(2 ** max(job.sends - 1, 0), _MAX_BACKOFF)
        if now - job.last_sent < timedelta(seconds=wait):
            continue
        with ctx.db.session() as session:
            if not repo.take_resend(session, job, now):
                continue
        log.warning(
            "re-sending job %s (message %d, the last one may be lost)", job.id, job.sends + 1
        )
        ctx.enqueue(job.id)
        resent += 1
    return resent


class ReaperThread(threading.Thread):
    """Daemon thread running :func:`reap_stale_jobs` every ``reaper_interval_s``."""

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(name="gsnn-edges-reaper", daemon=True)
        self.ctx = ctx
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.ctx.settings.reaper_interval_s):
            try:
                counts = reap_stale_jobs(self.ctx)
                if any(counts.values()):
                    log.info("reaper: %s", counts)
            except Exception:  # the loop must survive transient errors
                log.exception("reaper pass failed")

    def stop(self) -> None:
        self._stop_event.set()
