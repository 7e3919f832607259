"""Background heartbeat of a claimed job, so the reaper can tell lost workers apart."""

from __future__ import annotations

import contextvars
import logging
import threading
from types import TracebackType

from gsnn_edges.service import repository as repo
from gsnn_edges.service.context import ServiceContext

log = logging.getLogger(__name__)


class Heartbeat:
    """Context manager refreshing ``jobs.heartbeat_at`` every ``heartbeat_interval_s``.

    Epoch callbacks also refresh it; this thread covers long epochs and data loading.
    """

    def __init__(self, ctx: ServiceContext, job_id: str, token: str) -> None:
        self.ctx, self.job_id, self.token = ctx, job_id, token
        self._stop = threading.Event()
        # run in a copy of the caller's context: its log lines keep the job's tags
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name=f"heartbeat-{job_id}", daemon=True
        )

    def _run(self) -> None:
        interval = self.ctx.settings.heartbeat_interval_s
        while not self._stop.wait(interval):
            try:
                with self.ctx.db.session() as session:
                    if not repo.heartbeat(session, self.job_id, self.token):
                        return  # claim lost or job finished
            except Exception:  # keep beating through transient DB errors
                log.exception("heartbeat of job %s failed", self.job_id)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
