"""The suite's own Redis and PostgreSQL: disposable servers, and the one-line failure."""

from __future__ import annotations

import psycopg
import pytest
import redis

import backends


def test_backends_without_servers_or_binaries_fail_with_one_line(monkeypatch):
    monkeypatch.setenv("GSNN_TEST_REDIS_URL", "redis://127.0.0.1:1")
    monkeypatch.setenv("GSNN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:1/test")
    monkeypatch.setattr(backends.shutil, "which", lambda _name: None)
    monkeypatch.setattr(backends.glob, "glob", lambda _pattern: [])
    with pytest.raises(backends.BackendUnavailable) as info:
        backends.Backends().ensure()
    message = str(info.value)
    assert "\n" not in message
    assert "apt-get install redis-server" in message and "apt-get install postgresql" in message
    assert "redis://127.0.0.1:1" in message and "-m 'not services'" in message


@pytest.mark.skipif(
    backends.install_hints("redis://", "postgresql://") != [],
    reason="redis-server or initdb/pg_ctl not installed",
)
def test_backends_start_disposable_servers_when_nothing_answers(monkeypatch):
    """What `make test` does on a machine with the binaries but no running servers."""
    monkeypatch.setenv("GSNN_TEST_REDIS_URL", "redis://127.0.0.1:1")
    monkeypatch.setenv("GSNN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:1/test")
    found = backends.Backends()
    try:
        found.ensure()
        assert len(found.started) == 2 and "(running)" not in found.describe()
        assert redis.Redis.from_url(f"{found.redis_url}/3").set("k", "v")
        with psycopg.connect(found.pg_url, autocommit=True) as conn:
            conn.execute('CREATE DATABASE "scratch"')
        folders = [server.dir for server in found.started]
    finally:
        found.stop()
    assert not any(folder.exists() for folder in folders)
    assert not backends.redis_answers(found.redis_url) and not backends.pg_answers(found.pg_url)
