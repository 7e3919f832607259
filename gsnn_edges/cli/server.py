"""Server verbs: ``serve`` (API + worker, embedded), ``api`` and ``worker``.

Heavy imports (uvicorn, fastapi, celery) happen inside the verb functions.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gsnn_edges.service.settings import Settings

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve``, ``api`` and ``worker`` to the ``gsnn-edges`` parser."""
    serve = subparsers.add_parser(
        "serve",
        help="API plus an in-process worker on embedded defaults (SQLite, "
        "filesystem broker in the data dir); no servers needed.",
    )
    _add_http_options(serve)
    serve.add_argument("--data-dir", type=Path, default=Path("./data"), help="State dir.")
    serve.set_defaults(func=_serve)

    api = subparsers.add_parser("api", help="HTTP API only (settings from GSNN_EDGES_*).")
    _add_http_options(api)
    api.set_defaults(func=_api)

    worker = subparsers.add_parser(
        "worker", help="Celery worker for GSNN_EDGES_BROKER_URL (one job per child)."
    )
    worker.add_argument("--concurrency", type=int, default=1, help="Parallel jobs.")
    worker.add_argument("--loglevel", default="info", help="Celery log level.")
    worker.set_defaults(func=_worker)


def _add_http_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="Bind address.")
    parser.add_argument("--port", type=int, default=8000, help="Bind port.")


def celery_app(settings: Settings, **options: Any) -> FastAPI:
    """The API app wired to the Celery queue of ``settings`` (``api`` never imports the
    worker package: this adapter assembles the two)."""
    from api.app import create_app
    from worker.config import broker_ping, celery_enqueue, celery_enqueue_group, create_celery

    celery = create_celery(settings)
    return create_app(
        settings,
        enqueue=celery_enqueue(celery, settings),
        enqueue_many=celery_enqueue_group(celery, settings),
        broker_ping=broker_ping(celery, settings),
        **options,
    )


def _run_api(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    from api.limits import is_loopback

    if not settings.auth_enabled and not is_loopback(host):
        print(
            f"refusing to listen on {host}: GSNN_EDGES_API_KEYS is empty, so the API "
            "has no authentication and may only bind to loopback",
            file=sys.stderr,
        )
        return 2
    from gsnn_edges.service.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    # uvicorn keeps the logging set up above; the app logs one access line per request
    uvicorn.run(celery_app(settings), host=host, port=port, log_config=None, access_log=False)
    return 0


def _api(args: argparse.Namespace) -> int:
    from gsnn_edges.service.settings import get_settings

    return _run_api(get_settings(), args.host, args.port)


def _worker_argv(settings: Settings, concurrency: int, loglevel: str) -> list[str]:
    argv = [
        "--quiet",  # no start-up banner: every line on stderr is a structured log line
        "worker",
        "-l",
        loglevel,
        "-Q",
        settings.queue_name,
        "-c",
        str(concurrency),
        "--pool",
        "prefork",
    ]
    if settings.is_filesystem_broker:
        argv += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    return argv


def _worker(args: argparse.Namespace) -> int:
    from gsnn_edges.service.settings import get_settings
    from worker.app import app

    app.worker_main(_worker_argv(get_settings(), args.concurrency, args.loglevel))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from gsnn_edges.service.settings import Settings

    data_dir = args.data_dir.resolve()
    settings = Settings(data_dir=data_dir, database_url=None, broker_url=None)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GSNN_EDGES_DATABASE_URL", "GSNN_EDGES_BROKER_URL")
    }
    env["GSNN_EDGES_DATA_DIR"] = str(data_dir)
    worker = subprocess.Popen([sys.executable, "-m", "gsnn_edges.cli", "worker"], env=env)

    def stop_worker() -> None:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()

    def on_sigterm(signum: int, frame: object) -> None:
        # uvicorn shuts down gracefully, restores this handler and re-raises SIGTERM
        # without unwinding through `finally`; stop the worker here so it never outlives us.
        stop_worker()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return _run_api(settings, args.host, args.port)
    finally:
        stop_worker()
