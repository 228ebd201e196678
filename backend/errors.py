"""Errors the services raise for bad input or state; the API turns each into one HTTP status.

Every message says what was wrong and what is allowed, so a client can show it as is.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_ALLOWED_SHOWN = 10  # an error body lists at most this many allowed values, then a count and the list route


class ServiceError(Exception):
    status_code = 400
    code = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, field: str | None = None, allowed: Iterable[str] | None = None,
                 listed_at: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.allowed = sorted(allowed) if allowed is not None else None
        self.listed_at = listed_at  # the route that lists every allowed value

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.allowed is not None:
            body["allowed"] = self.allowed[:MAX_ALLOWED_SHOWN]
            if len(self.allowed) > MAX_ALLOWED_SHOWN:
                body["allowed_total"] = len(self.allowed)
                if self.listed_at:
                    body["allowed_listed_at"] = self.listed_at
        return body


class InvalidInput(ServiceError):
    status_code = 400
    code = "invalid_input"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class Unavailable(ServiceError):
    status_code = 503
    code = "unavailable"


class Busy(ServiceError):
    """Too much work is waiting already: retry after ``retry_after_s`` seconds (429 with Retry-After)."""

    status_code = 429
    code = "busy"

    def __init__(self, message: str, *, retry_after_s: int = 1):
        super().__init__(message)
        self.headers = {"Retry-After": str(max(1, int(retry_after_s)))}


class InsufficientMemory(ServiceError):
    """The model would not fit in the memory available: nothing was loaded."""

    status_code = 507
    code = "insufficient_memory"


class InsufficientStorage(ServiceError):
    """The disk holding the data dir is full: nothing was changed."""

    status_code = 507
    code = "insufficient_storage"
