"""Limits applied before a request body is read: authentication, then the body's size."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import tenant_for
from api.errors import BodyTooLarge, problem_response
from gsnn_edges.service.errors import AuthenticationError

_NO_BODY = {"GET", "HEAD", "OPTIONS", "DELETE"}


class AuthBeforeBody:
    """Pure ASGI middleware: with API keys configured, a request that carries a body is
    answered 401 from its headers alone when its key is missing or unknown, so an
    unauthenticated 100 MB upload costs its headers, not its body (FastAPI reads the body
    before it runs the route's dependencies)."""

    def __init__(self, app: ASGIApp, keys: dict[str, str]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["method"] in _NO_BODY:
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or []).get(b"authorization")
        try:
            tenant_for(raw.decode("latin-1") if raw is not None else None, self.keys)
        except AuthenticationError as exc:
            headers = {"WWW-Authenticate": "Bearer"}
            await problem_response(401, exc.message, "unauthorized", None, headers)(
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
