"""Limits applied before a request body is read: who may call (loopback only without API
keys), how often (a rate per key), authentication, then the body's size."""

from __future__ import annotations

import ipaddress
import math
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import scope_tenant
from api.errors import BodyTooLarge, problem_response
from gsnn_edges.service.errors import AuthenticationError

_NO_BODY = {"GET", "HEAD", "OPTIONS", "DELETE"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) is this machine:
    ``localhost`` or a loopback address. Also what ``gsnn-edges api`` binds to without
    keys."""
    host = host.strip().lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_host_header(value: str) -> bool:
    """Whether a ``Host`` header names this machine (:func:`is_loopback`, with or without
    a port)."""
    host = value.strip()
    if host.startswith("["):  # [::1]:8000
        host = host[: host.find("]") + 1] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":")[0]
    return is_loopback(host)


# probes an orchestrator or Prometheus polls: public (no key) and never rate limited
_PROBES = {"/healthz", "/readyz", "/metrics"}


class TokenBuckets:
    """One token bucket per caller: ``burst`` requests at once, then ``rate`` per second.

    Buckets that have refilled completely are dropped when there are more than
    ``max_callers``, so a flood of distinct addresses cannot grow the table without
    bound (a full bucket holds no state worth keeping)."""

    def __init__(self, rate: float, burst: int, max_callers: int = 10_000) -> None:
        self.rate, self.burst, self.max_callers = rate, float(burst), max_callers
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at)

    def take(self, caller: str, now: float | None = None) -> float:
        """Take one token; 0 when granted, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[caller] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[caller] = (tokens - 1, now)
        if len(self._buckets) > self.max_callers:
            self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        full = [
            k
            for k, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for caller in full:
            del self._buckets[caller]


class RateLimit:
    """Pure ASGI middleware: a request rate per API key (per client address for
    requests without a valid key) in this process; over it, 429 with ``Retry-After``
    before the body is read. Each API process keeps its own buckets, so the rate a
    deployment allows is this one times its API processes."""

    def __init__(self, app: ASGIApp, keys: dict[str, str], rate: float, burst: int) -> None:
        self.app, self.keys = app, keys
        self.buckets = TokenBuckets(rate, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _PROBES:
            await self.app(scope, receive, send)
            return
        tenant = scope_tenant(scope, self.keys)
        if isinstance(tenant, str):
            caller = "tenant:" + tenant
        else:
            client = scope.get("client")
            caller = "address:" + (client[0] if client else "unknown")
        wait = self.buckets.take(caller)
        if wait == 0:
            await self.app(scope, receive, send)
            return
        rate = self.buckets.rate
        detail = (
            f"more than {rate:g} requests per second from this key "
            f"(GSNN_EDGES_RATE_LIMIT_PER_S); retry after the Retry-After seconds"
        )
        headers = {"Retry-After": str(math.ceil(wait))}
        await problem_response(429, detail, "too-many-requests", None, headers)(
            scope, receive, send
        )


class LoopbackOnly:
    """Pure ASGI middleware for unauthenticated mode (no ``GSNN_EDGES_API_KEYS``), however
    the app is launched: a caller that is not on this machine gets 403, and so does a
    request whose ``Host`` is not a loopback name, which is what a DNS-rebinding page in
    the user's browser would send (its own domain, resolved to 127.0.0.1)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if client is None or not is_loopback(client[0]):
            detail = "this server has no API keys and serves loopback callers only"
        elif not loopback_host_header(host):
            detail = f"Host {host!r} is not a loopback name (DNS rebinding guard)"
        else:
            await self.app(scope, receive, send)
            return
        await problem_response(403, detail, "forbidden")(scope, receive, send)


class AuthBeforeBody:
    """Pure ASGI middleware: with API keys configured, a request that carries a body is
    answered 401 from its headers alone when its key is missing or unknown, so an
    unauthenticated 100 MB upload costs its headers, not its body (FastAPI reads the body
    before it runs the route's dependencies)."""

    def __init__(self, app: ASGIApp, keys: dict[str, str]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.keys
            or scope["method"] in _NO_BODY
            or scope["path"] in _PROBES  # public: routing answers 405 to POST /healthz
        ):
            await self.app(scope, receive, send)
            return
        tenant = scope_tenant(scope, self.keys)
        if isinstance(tenant, AuthenticationError):
            headers = {"WWW-Authenticate": "Bearer"}
            await problem_response(401, tenant.message, "unauthorized", None, headers)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Pure ASGI middleware rejecting bodies over ``max_bytes`` with 413.

    A ``Content-Length`` over the limit is refused before reading; otherwise bytes are
    counted as they arrive and :class:`BodyTooLarge` is raised from ``receive`` once
    the limit is crossed, so no more than ``max_bytes`` (plus one chunk) is ever read.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await BodyTooLarge(self.max_bytes).response()(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)
