"""The one process helper of the suite: `gsnn-edges` subprocesses (in their own process
groups, with an environment free of the developer's ``GSNN_EDGES_*`` settings), free
ports, and the API app built in process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gsnn_edges.service.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def make_app(data_dir: Path, enqueue: Callable[[str], None], **settings) -> FastAPI:
    """The app in process (default: SQLite under ``data_dir``): no broker, no reaper thread.

    ``enqueue(job_id)`` receives submitted jobs; ``settings`` override the rest
    (``api_keys`` defaults to none, whatever the environment says).
    """
    # imported here so that conftest (which needs free_port) does not import the API
    from api.app import create_app
    from gsnn_edges.service.settings import Settings

    defaults = {"database_url": None, "broker_url": None, "api_keys": ""}
    full = Settings(data_dir=data_dir, **{**defaults, **settings})
    return create_app(full, enqueue=enqueue, broker_ping=lambda: None, run_reaper=False)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gsnn_edges_argv(*args: str) -> list[str]:
    """The installed ``gsnn-edges`` console script (``python -m`` when not installed)."""
    script = Path(sys.executable).parent / "gsnn-edges"
    if script.exists():
        return [str(script), *args]
    found = shutil.which("gsnn-edges")
    return [found, *args] if found else [sys.executable, "-m", "gsnn_edges.cli", *args]


def service_env(**settings: object) -> dict[str, str]:
    """Our environment without any ``GSNN_EDGES_*`` variable, plus ``settings``.

    The only way the suite builds a subprocess environment: a developer's own
    ``GSNN_EDGES_*`` variables never reach the processes a test starts.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSNN_EDGES_")}
    env.update({f"GSNN_EDGES_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def stop_process_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group of ``proc``; SIGKILL it if it outlives ``timeout``."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class ServiceProcess:
    """One ``gsnn-edges VERB ...`` subprocess in its own process group, logging to a file.

    Its environment is ``service_env(**settings)``: ``settings`` are ``Settings`` field
    names (``database_url=...``) and nothing else of ``GSNN_EDGES_*`` gets through.
    """

    def __init__(self, args: list[str], log_path: Path, **settings: object) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            gsnn_edges_argv(*args),
            cwd=REPO,
            env=service_env(**settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def wait_ready(self, base_url: str, timeout: float = 60.0, path: str = "/readyz") -> None:
        """Poll ``path`` until it answers 200; fail with the log if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{base_url}{path}", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{base_url} not ready after {timeout} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL the process group at once (a lost machine)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process_group(self.proc, timeout=30)
        self._log.close()


def start_worker(settings: Settings, log_path: Path, concurrency: int = 1) -> ServiceProcess:
    """``gsnn-edges worker`` reading the same ``settings`` as the test's own context."""
    return ServiceProcess(
        ["worker", "--loglevel", "info", "--concurrency", str(concurrency)],
        log_path,
        data_dir=settings.data_dir,
        database_url=settings.resolved_database_url,
        broker_url=settings.resolved_broker_url,
        queue_name=settings.queue_name,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        stale_after_s=settings.stale_after_s,
        max_attempts=settings.max_attempts,
    )
