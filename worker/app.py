"""The Celery application for ``celery -A worker.app worker`` (settings from env)."""

from __future__ import annotations

from gsnn_edges.service.settings import get_settings
from worker.config import create_celery

app = create_celery(get_settings())
app.conf.imports = ("worker.tasks",)
