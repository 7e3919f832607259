"""Every error becomes RFC 9457 problem+json here, in one place."""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas.common import Problem
from gsnn_edges.service import errors as svc
from gsnn_edges.spec import error_message

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"

# Domain error -> (status, problem type slug). Order matters: subclasses first.
_DOMAIN: list[tuple[type[svc.ServiceError], int, str]] = [
    (svc.AuthenticationError, 401, "unauthorized"),
    (svc.NotFoundError, 404, "not-found"),
    (svc.ResultNotReadyError, 409, "result-not-ready"),
    (svc.ConflictError, 409, "conflict"),
    (svc.IdempotencyMismatchError, 422, "idempotency-key-reused"),
    (svc.InvalidInputError, 422, "invalid-input"),
    (svc.TooManyRequestsError, 429, "too-many-requests"),
    (svc.ServiceUnavailableError, 503, "service-unavailable"),
]

_DESCRIPTIONS = {
    400: "Malformed request (e.g. body is not valid JSON).",
    401: "Missing or unknown API key.",
    404: "No such resource for this tenant.",
    409: "The resource is not in a state that allows this (e.g. results before success).",
    413: "Request body larger than GSNN_EDGES_MAX_UPLOAD_MB.",
    422: "The request is well formed but invalid; `errors` lists each problem.",
    429: "Over the tenant's active-job quota or request rate; retry after Retry-After s.",
    503: "A backing service (database or broker) is unavailable.",
}


def problem_type(slug: str) -> str:
    return f"/problems/{slug}"


def problem_response(
    status: int,
    detail: str,
    slug: str | None = None,
    errors: list | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body = Problem(
        type=problem_type(slug) if slug else "about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        errors=errors or None,
    ).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI ``responses=`` entries documenting problem+json errors."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        code: {
            "description": _DESCRIPTIONS[code],
            "model": Problem,
            "content": {PROBLEM_JSON: {"schema": schema}},
        }
        for code in codes
    }


# Problems the app-wide layers answer whatever a route declares: request parsing (400
# malformed JSON or multipart) and api.limits.BodySizeLimit (413) wherever there is a body;
# api.limits.AuthBeforeBody and RateLimit (401, 429) and the database (503) wherever a key is
# required (every /v1 operation).
_BODY_PROBLEMS = (400, 413)
_KEYED_PROBLEMS = (401, 429, 503)


def document_shared_problems(openapi: dict) -> dict:
    """Complete ``openapi`` (in place; idempotent) with the problems every operation can get.

    Adds the shared problems above to each operation they apply to, and documents every
    422 as the problem our handler sends: FastAPI documents its own ``HTTPValidationError``
    body for a route that declares no 422, a shape this API never answers.
    """
    problem = {"$ref": "#/components/schemas/Problem"}
    for path_item in openapi.get("paths", {}).values():
        for op in path_item.values():
            responses = op["responses"]
            codes = [422] if "422" in responses else []
            codes += _BODY_PROBLEMS if "requestBody" in op else ()
            codes += _KEYED_PROBLEMS if op.get("security") else ()
            for code in codes:
                if PROBLEM_JSON not in responses.get(str(code), {}).get("content", {}):
                    responses[str(code)] = {
                        "description": _DESCRIPTIONS[code],
                        "content": {PROBLEM_JSON: {"schema": problem}},
                    }
    schemas = openapi.get("components", {}).get("schemas", {})
    for fastapi_own in ("HTTPValidationError", "ValidationError"):  # referrer first
        if f'"#/components/schemas/{fastapi_own}"' not in json.dumps(openapi):
            schemas.pop(fastapi_own, None)
    return openapi


class BodyTooLarge(HTTPException):
    """A request body over the size limit.

    An HTTPException because FastAPI turns any other error raised while reading the
    body into a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"request body exceeds the limit of {limit} bytes "
            f"({limit / 2**20:g} MiB, GSNN_EDGES_MAX_UPLOAD_MB)",
        )

    def response(self) -> JSONResponse:
        """The one 413 problem, whether Content-Length or the streamed count caught it."""
        return problem_response(413, self.detail, "payload-too-large")


# 401 says how to authenticate; 503 when to come back (the outage is usually brief).
_HEADERS = {401: {"WWW-Authenticate": "Bearer"}, 503: {"Retry-After": "5"}}


async def _domain_handler(_: Request, exc: Exception) -> JSONResponse:
    for cls, status, slug in _DOMAIN:
        if isinstance(exc, cls):
            headers = _HEADERS.get(status)
            if isinstance(exc, svc.TooManyRequestsError):
                headers = {"Retry-After": str(exc.retry_after)}
            return problem_response(status, exc.message, slug, exc.errors, headers)
    raise exc  # pragma: no cover - every ServiceError subclass is listed


def _loc(loc: tuple) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in loc]


async def _validation_handler(_: Request, exc: Exception) -> JSONResponse:
    errs = exc.errors()  # type: ignore[attr-defined]
    if any(e.get("type") == "json_invalid" for e in errs):
        e = next(e for e in errs if e.get("type") == "json_invalid")
        reason = (e.get("ctx") or {}).get("error", "invalid JSON")
        return problem_response(
            400,
            f"request body is not valid JSON: {reason} (at character {e['loc'][-1]})",
            "malformed-json",
        )
    items = [{"loc": _loc(e["loc"]), "msg": error_message(e)} for e in errs]
    summary = "; ".join(f"{'.'.join(map(str, i['loc']))}: {i['msg']}" for i in items[:5])
    return problem_response(422, f"invalid request: {summary}", "validation-error", items)


_HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Methods the OpenAPI document lists for the path templates ``path`` matches.

    Starlette's own 405 names only the methods of the first route whose path matched, so
    ``OPTIONS /v1/graphs`` would be told ``Allow: POST`` although GET is served too.
    """
    methods: set[str] = set()
    for template, operations in app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods.update(m.upper() for m in operations if m.upper() in _HTTP_METHODS)
    return sorted(methods)


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, BodyTooLarge):
        return exc.response()
    if exc.status_code == 405:
        allow = ", ".join(allowed_methods(request.app, request.url.path))
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allow}"
        return problem_response(405, detail, "method-not-allowed", None, {"Allow": allow})
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(exc.status_code, detail, None, None, exc.headers)


async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(500, "internal server error; see the server log", "internal")


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""
    app.add_exception_handler(svc.ServiceError, _domain_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unhandled)
