"""Request dependencies: service context, tenant (bearer auth) and pagination."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import Scope

from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.errors import AuthenticationError
from gsnn_edges.service.settings import LOCAL_TENANT

_bearer = HTTPBearer(auto_error=False, description="API key from GSNN_EDGES_API_KEYS.")


# The dependencies are ``async def`` although they do no I/O: FastAPI runs a plain
# ``def`` dependency in the thread pool, one hop per dependency per request, where a
# status poll's endpoint needs one (benchmarks/README.md, "Thread-pool hops").


async def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx


def tenant_for(authorization: str | None, keys: dict[str, str]) -> str:
    """Tenant of an ``Authorization: Bearer <key>`` header value; the local tenant when no
    keys are configured. The one home of the key check (route dependency and the
    auth-before-body middleware).

    Raises:
        AuthenticationError: keys are configured and the key is missing or unknown.
    """
    if not keys:
        return LOCAL_TENANT
    scheme, _, offered = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not offered.strip():
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    for key, tenant in keys.items():
        if hmac.compare_digest(key.encode(), offered.strip().encode()):
            return tenant
    raise AuthenticationError("unknown API key")


# where a request's resolved tenant (or its AuthenticationError) is kept in the ASGI scope
_SCOPE_TENANT = "gsnn_edges.tenant"


def scope_tenant(scope: Scope, keys: dict[str, str]) -> str | AuthenticationError:
    """The tenant of the request's bearer key (:func:`tenant_for`), or the error saying
    why there is none, resolved once per request: the observing and limiting middlewares
    and the route dependency all ask, and share the request's scope."""
    if _SCOPE_TENANT not in scope:
        raw = dict(scope.get("headers") or []).get(b"authorization")
        try:
            scope[_SCOPE_TENANT] = tenant_for(raw.decode("latin-1") if raw else None, keys)
        except AuthenticationError as exc:
            scope[_SCOPE_TENANT] = exc
    return scope[_SCOPE_TENANT]


async def get_tenant(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Tenant of the request's bearer key (:func:`scope_tenant`); ``_credentials`` only
    documents the scheme in OpenAPI.

    Raises:
        AuthenticationError: keys are configured and the key is missing or unknown.
    """
    tenant = scope_tenant(request.scope, request.app.state.tenant_keys)
    if isinstance(tenant, AuthenticationError):
        raise tenant
    return tenant


# past any real table, within every database's OFFSET (a larger one was a 500 on SQLite)
MAX_OFFSET = 2**31 - 1


@dataclass(frozen=True)
class Paging:
    """``limit`` (1..1000, default 100) and ``offset`` query parameters."""

    limit: int
    offset: int


async def get_paging(
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size (max 1000).")] = 100,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="Items to skip (at most 2^31 - 1).")
    ] = 0,
) -> Paging:
    return Paging(limit, offset)


Ctx = Annotated[ServiceContext, Depends(get_ctx)]
Tenant = Annotated[str, Depends(get_tenant)]
PagingDep = Annotated[Paging, Depends(get_paging)]
