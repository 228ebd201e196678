"""Errors the services raise for bad input or state; the API turns each into one HTTP status.

Every message says what was wrong and what is allowed, so a client can show it as is.
"""

from __future__ import annotations

from collections.abc import Iterable


class ServiceError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, allowed: Iterable[str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.allowed = sorted(allowed) if allowed is not None else None

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.allowed is not None:
            body["allowed"] = self.allowed
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


class InsufficientStorage(ServiceError):
    """The disk holding the data dir is full: nothing was changed."""

    status_code = 507
    code = "insufficient_storage"
