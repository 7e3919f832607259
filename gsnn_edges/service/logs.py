"""Structured logs: one JSON object per line, each carrying the request id, the tenant
and the job of the work it belongs to.

The API binds ``request_id`` and ``tenant`` per request (``api.observability``), the
worker binds ``job_id`` and ``tenant`` per job (``service.runner``), in context
variables, so every line logged while that work runs - by our code, uvicorn, Celery or
SQLAlchemy - says whose it is without being passed along. ``GSNN_EDGES_LOG_FORMAT=text``
gives the same fields as ``key=value`` text for a terminal.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

CONTEXT: dict[str, ContextVar[str | None]] = {
    name: ContextVar(name, default=None) for name in ("request_id", "tenant", "job_id")
}
# attributes every LogRecord has; anything else on a record came in through ``extra=``
# (and uvicorn's terminal-coloured copy of the message)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
_STANDARD |= {"message", "asctime", "color_message"}


@contextmanager
def bound(**values: str | None) -> Iterator[None]:
    """Tag every log line inside the block with ``values`` (keys of :data:`CONTEXT`)."""
    tokens = [(CONTEXT[name], CONTEXT[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind(**values: str | None) -> None:
    """Tag the rest of the current context (a request's task, a job's thread)."""
    for name, value in values.items():
        CONTEXT[name].set(value)


class ContextFilter(logging.Filter):
    """Stamps the bound context onto each record as it is emitted, in the thread and
    task that logged it (a handler's filter runs there, before any formatting)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in CONTEXT.items():
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of one log line: time, level, logger, message, the record's other
    attributes (the context :class:`ContextFilter` stamped, ``extra=`` fields) and, with
    an exception, its traceback."""
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
            timespec="milliseconds"
        ),
        "level": record.levelname,
        "logger": record.name,
        "message": record.getMessage(),
    }
    fields.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
    if record.exc_info:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    return fields


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON (:func:`record_fields`)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_fields(record), default=str)


class TextFormatter(logging.Formatter):
    """The same fields as text: ``ts level logger: message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        head = " ".join(str(fields.pop(k)) for k in ("ts", "level"))
        head += f" {fields.pop('logger')}: {fields.pop('message')}"
        exc = fields.pop("exc", None)
        line = " ".join([head, *(f"{k}={v}" for k, v in fields.items())])
        return f"{line}\n{exc}" if exc else line


def configure_logging(log_format: str = "json", level: int | str = "INFO") -> None:
    """Send every logger's records, uvicorn's and Celery's included, and Python
    warnings to stderr in ``log_format`` (``'json'`` or ``'text'``) from ``level`` up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.captureWarnings(True)  # warnings become log lines too, not bare stderr text
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        named = logging.getLogger(name)
        named.handlers[:] = []  # their records reach the root handler
        named.propagate = True
