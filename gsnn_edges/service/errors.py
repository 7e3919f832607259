"""Domain errors of the service; ``api/errors.py`` maps them to HTTP in one place."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class ServiceError(Exception):
    """Base class. ``errors`` holds ``{loc, msg}`` items for field-level problems."""

    def __init__(self, message: str, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class NotFoundError(ServiceError):
    """The resource does not exist or belongs to another tenant."""


def require_found(row: T | None, what: str) -> T:
    """``row``, or NotFoundError naming ``what`` (e.g. ``"job 'job_1'"``) when it is None."""
    if row is None:
        raise NotFoundError(f"{what} not found")
    return row


class InvalidInputError(ServiceError):
    """The request is well formed but its content cannot be used."""

    @classmethod
    def at(cls, loc: list, msg: str) -> InvalidInputError:
        """One problem at ``loc``, its ``msg`` doubling as the message."""
        return cls(msg, [{"loc": loc, "msg": msg}])


def require_storable_text(value: str | None, loc: list, max_length: int) -> None:
    """A string bound for a text column: PostgreSQL refuses NUL characters and the column
    has a length, so either is the caller's to fix (InvalidInputError, a 422), not a 500
    from the database."""
    if value is None:
        return
    if "\x00" in value:
        raise InvalidInputError.at(loc, "must not contain NUL (\\u0000) characters")
    if len(value) > max_length:
        raise InvalidInputError.at(loc, f"is {len(value)} characters long; at most {max_length}")


class ConflictError(ServiceError):
    """The resource is not in a state that allows the operation."""


class ResultNotReadyError(ConflictError):
    """Results were requested before the job succeeded."""


class IdempotencyMismatchError(ServiceError):
    """An Idempotency-Key was reused with a different request body."""


class ServiceUnavailableError(ServiceError):
    """A backing service (database, broker) is unreachable."""


class TooManyRequestsError(ServiceError):
    """A tenant is over a quota or a rate limit; ``retry_after`` says when to try again
    (seconds)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class AuthenticationError(ServiceError):
    """Missing or unknown API key."""
