"""The Celery application for ``celery -A worker.app worker`` (settings from env)."""

from __future__ import annotations

from celery import signals

from gsnn_edges.service.logs import configure_logging
from gsnn_edges.service.settings import get_settings
from worker.config import create_celery

app = create_celery(get_settings())
app.conf.imports = ("worker.tasks",)


@signals.setup_logging.connect
def _structured_logs(loglevel: int | str | None = None, **_: object) -> None:
    """Celery's own logging set-up is replaced by the service's structured logs (a
    receiver of this signal keeps Celery from configuring logging itself); the worker's
    ``--loglevel`` wins over the setting."""
    settings = get_settings()
    configure_logging(settings.log_format, loglevel or settings.log_level)
