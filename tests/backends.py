"""Redis and PostgreSQL for the `services` tests: the running ones, else disposable ones.

``GSNN_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379``) and ``GSNN_TEST_PG_URL``
(default ``postgresql://postgres@127.0.0.1:5432/test``, an admin connection that may
create databases) name the servers to use. Where one does not answer, a throwaway
server starts on a free port in a temporary folder (``redis-server``; ``initdb`` +
``pg_ctl``, found on PATH or under ``/usr/lib/postgresql/*/bin``) and is stopped at the
end of the session. Without the binaries, :class:`BackendUnavailable` says what to install.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis

from proctools import free_port

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


class BackendUnavailable(RuntimeError):
    """A server is neither reachable nor startable; the message is one line."""


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def pg_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _wait(
    ready: Callable[[], bool],
    what: str,
    log: Path,
    proc: subprocess.Popen,
    timeout: float = 30.0,
) -> None:
    """Until ``ready()``; fails at once when ``proc`` (the server we started) has exited,
    so a server that lost a race for its port never passes for another one there."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise BackendUnavailable(f"{what} exited ({proc.returncode}): {tail}")
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise BackendUnavailable(f"{what} did not start within {timeout:.0f} s: {tail}")
        time.sleep(0.1)


def pg_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's layout."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    versions.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def install_hints(redis_url: str | None, pg_url: str | None) -> list[str]:
    """For each server that is down (its URL given) and cannot be started: what to do."""
    hints = []
    if redis_url and not shutil.which("redis-server"):
        hints.append(
            f"no Redis answers at {redis_url} and redis-server is not installed "
            "(Debian: apt-get install redis-server)"
        )
    if pg_url and pg_bindir() is None:
        hints.append(
            f"no PostgreSQL answers at {pg_url} and initdb/pg_ctl are not installed "
            "(Debian: apt-get install postgresql)"
        )
    return hints


def _unprivileged() -> dict:
    """``subprocess`` arguments that drop root (initdb refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    raise BackendUnavailable("running as root and no 'postgres' or 'nobody' user for initdb")


def _end(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Stop a server we started: ``sig``, then SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class DisposableRedis:
    """``redis-server`` on a free port, keeping nothing on disk. ``halt()`` and
    ``start()`` take it down and bring it back on the same port (empty, as a restarted
    Redis without persistence is)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gsnn-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.log = self.dir / "redis.log"
        self.proc: subprocess.Popen | None = None
        try:
            self.start()
        except BaseException:
            self.stop()
            raise

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        args += ["no", "--dir", str(self.dir), "--logfile", str(self.log)]
        self.proc = subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL)
        what = f"redis-server on port {self.port}"
        _wait(lambda: redis_answers(self.url), what, self.log, self.proc)

    def halt(self) -> None:
        _end(self.proc)

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)


class DisposablePostgres:
    """A cluster made by ``initdb`` (trust auth, user ``postgres``, C locale), its
    ``postgres`` server a child of this process like Redis (``pg_ctl`` would detach it
    into a session of its own that outlives a killed test run). ``halt()`` and
    ``start()`` take the server down and bring it back with its data, on the same port."""

    def __init__(self, bindir: Path) -> None:
        self.bindir, self.port = bindir, free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gsnn-pg-"))
        self.data, self.log = self.dir / "data", self.dir / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen | None = None
        try:
            self._as = _unprivileged()
            if self._as:
                os.chown(self.dir, self._as["user"], self._as["group"])
            # --no-locale: the caller's LANG may name a locale this machine lacks
            self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--no-locale")  # fmt: skip
            self.start()
        except BaseException:
            self.stop()
            raise

    def start(self) -> None:
        settings = ["listen_addresses=127.0.0.1", "fsync=off", "full_page_writes=off"]
        settings += ["synchronous_commit=off"]
        argv = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        argv += ["-k", str(self.dir), *(a for s in settings for a in ("-c", s))]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=self.dir, **self._as)
        _wait(lambda: pg_answers(self.url), f"PostgreSQL on port {self.port}", self.log, self.proc)

    def _run(self, tool: str, *args: object) -> None:
        argv = [str(self.bindir / tool), *map(str, args)]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir, **self._as)
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise BackendUnavailable(f"{tool} failed ({done.returncode}): {why[0]}")

    def halt(self) -> None:
        _end(self.proc, signal.SIGINT)  # postgres' fast shutdown: clients cut, data kept

    def stop(self) -> None:
        _end(self.proc, signal.SIGQUIT)  # immediate: the data goes anyway
        shutil.rmtree(self.dir, ignore_errors=True)


class Backends:
    """The Redis and PostgreSQL URLs for this session, starting servers where needed."""

    def __init__(self) -> None:
        self.redis_url = os.environ.get("GSNN_TEST_REDIS_URL", DEFAULT_REDIS_URL).rstrip("/")
        self.pg_url = os.environ.get("GSNN_TEST_PG_URL", DEFAULT_PG_URL)
        self.started: list[DisposableRedis | DisposablePostgres] = []

    def ensure(self) -> None:
        """Use the configured servers when they answer; start the others, or raise."""
        need_redis, need_pg = not redis_answers(self.redis_url), not pg_answers(self.pg_url)
        hints = install_hints(
            self.redis_url if need_redis else None, self.pg_url if need_pg else None
        )
        if hints:
            raise BackendUnavailable(
                f"services tests need Redis and PostgreSQL: {'; '.join(hints)} "
                "- or run without them: pytest -m 'not services'"
            )
        if need_redis:
            self.started.append(DisposableRedis())
            self.redis_url = self.started[-1].url
        if need_pg:
            self.started.append(DisposablePostgres(pg_bindir()))
            self.pg_url = self.started[-1].url

    def describe(self) -> str:
        """One line: which servers the session uses and which it started."""
        ours = {server.url for server in self.started}
        used = {"Redis": self.redis_url, "PostgreSQL": self.pg_url}
        return "services: " + ", ".join(
            f"{name} {url} ({'disposable' if url in ours else 'running'})"
            for name, url in used.items()
        )

    def stop(self) -> None:
        while self.started:
            self.started.pop().stop()
