"""Shared response pieces: problem details and pagination."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ProblemItem(BaseModel):
    """One field-level problem."""

    loc: list[str | int] = Field(description="Where the problem is, e.g. ['body', 'edges', 3].")
    msg: str = Field(description="What is wrong, in words a user can act on.")


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str = Field(description="URI reference identifying the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="HTTP status code.")
    detail: str = Field(description="Explanation specific to this occurrence.")
    errors: list[ProblemItem] | None = Field(
        None, description="Field-level problems (validation errors)."
    )


class Page(BaseModel):
    """Pagination envelope fields."""

    total: int = Field(description="Number of items matching the query, ignoring paging.")
    limit: int = Field(description="Page size used.")
    offset: int = Field(description="Number of items skipped.")

    @classmethod
    def of(cls, items: list, total: int, paging: Any) -> Page:
        """A page of ``items`` (already converted) for the request's ``limit``/``offset``."""
        return cls(total=total, limit=paging.limit, offset=paging.offset, items=items)
