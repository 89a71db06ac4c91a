"""Everything signoff raises.

Errors (something is wrong) all derive from :class:`SignoffError`::

    SignoffError
    ├── ConfigError            bad configuration or policy, found before anything runs
    ├── UsageError             the API was called in a way it does not support
    ├── MissingDependency      an optional extra is not installed (also an ImportError)
    ├── UnknownTool            no gated tool has that name
    ├── BadRequest             a request the server cannot read at all (not JSON, no body)
    │   └── OAuthError         an OAuth 2.0 error with the RFC's code (RFC 6749, RFC 8628)
    │       └── OAuthClientError   an unknown client (invalid_client, 401)
    ├── InvalidArguments       the model's arguments do not fit the tool's schema
    ├── NotFound               no such approval request (or not visible to the caller)
    ├── Unauthorized           no identity, or a token that does not verify
    │   └── InvalidReceipt     a receipt that does not prove an approval (signoff.receipts)
    │       ├── ReceiptExpired     past its ``exp``
    │       └── ReceiptMismatch    for another tool, or other arguments
    ├── Forbidden              identity known, action not allowed (role, kind, self-approval)
    │   └── PolicyDenied       the operator's policy refuses this call outright
    ├── Conflict               the request is no longer in a state that allows the action
    │   └── StateMismatch      the request's row disagrees with its audited events
    ├── InvalidEdit            modified arguments outside ``editable`` or breaking the schema
    ├── PayloadTooLarge        a request body or its arguments exceed the limits
    ├── RequestTimeout         a request body did not arrive in time
    ├── TooManyRequests        too many sign-in attempts from one client
    ├── StoreError             the store failed (the cause is chained)
    └── Unavailable            the approval server cannot be reached

Control-flow outcomes (the call simply did not run) are kept apart, under
:class:`signoff.outcome.NotRun` (``Rejected``, ``ApprovalTimeout``, ``Cancelled``), so that
``except SignoffError`` never swallows a rejection by accident.
"""

from __future__ import annotations

from typing import Any


class SignoffError(Exception):
    """A signoff error."""

    #: a short stable code, used as the problem ``type`` suffix and in CLI output
    code: str = "error"

    def __init__(self, message: str | None = None, **detail: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.detail = detail
        super().__init__(self.message)


class ConfigError(SignoffError):
    """The configuration is invalid."""

    code = "config_error"


class UsageError(SignoffError):
    """The API was called in a way it does not support."""

    code = "usage_error"


class MissingDependency(SignoffError, ImportError):
    """An optional dependency is not installed."""

    code = "missing_dependency"

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'signoff[{extra}]'",
            package=package,
            extra=extra,
        )


class UnknownTool(SignoffError):
    """No gated tool has that name."""

    code = "unknown_tool"


class BadRequest(SignoffError):
    """The request cannot be read."""

    code = "bad_request"


class OAuthError(BadRequest):
    """An OAuth 2.0 error: ``error`` is the code RFC 6749 §5.2 or RFC 8628 §3.5 names
    (``authorization_pending``, ``slow_down``, ``expired_token``, ``access_denied``,
    ``invalid_grant`` …). The OAuth endpoints answer it as ``{"error", "error_description"}``."""

    code = "oauth_error"

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description, error=error)
        self.error = error


class OAuthClientError(OAuthError):
    """The client is unknown (``invalid_client``)."""

    code = "oauth_client_error"

    def __init__(self, description: str) -> None:
        super().__init__("invalid_client", description)


class InvalidArguments(SignoffError):
    """The arguments do not match the tool's schema."""

    code = "invalid_arguments"


class NotFound(SignoffError):
    """No such approval request."""

    code = "not_found"


class Unauthorized(SignoffError):
    """Authentication is missing or invalid."""

    code = "unauthorized"


class InvalidReceipt(Unauthorized):
    """The receipt does not prove an approval: bad signature, unknown key, not EdDSA."""

    code = "invalid_receipt"


class ReceiptExpired(InvalidReceipt):
    """The receipt was good once, and has expired."""

    code = "receipt_expired"


class ReceiptMismatch(InvalidReceipt):
    """The receipt approves another tool, or other arguments."""

    code = "receipt_mismatch"


class Forbidden(SignoffError):
    """The caller may not do this."""

    code = "forbidden"


class PolicyDenied(Forbidden):
    """The operator's policy does not allow this call."""

    code = "policy_denied"


class Conflict(SignoffError):
    """The request is no longer in a state that allows this."""

    code = "conflict"


class StateMismatch(Conflict):
    """The request's stored state does not match its audit log: it was changed outside
    signoff, so nothing is decided, run or reported on it (fail closed)."""

    code = "state_mismatch"


class InvalidEdit(SignoffError):
    """The modified arguments are not allowed."""

    code = "invalid_edit"


class PayloadTooLarge(SignoffError):
    """The request body is too large."""

    code = "payload_too_large"


class RequestTimeout(SignoffError):
    """The request body did not arrive in time."""

    code = "request_timeout"


class TooManyRequests(SignoffError):
    """Too many attempts from one client; ``retry_after`` says in how many seconds to retry."""

    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class StoreError(SignoffError):
    """The store failed."""

    code = "store_error"


class Unavailable(SignoffError):
    """The approval server cannot be reached."""

    code = "unavailable"


def error_class(code: str) -> type[SignoffError] | None:
    """The error class whose ``code`` is ``code`` (how an HTTP client turns a problem
    document back into the error the server raised: one table, on both sides)."""
    stack: list[type[SignoffError]] = [SignoffError]
    while stack:
        cls = stack.pop()
        if cls.code == code:
            return cls
        stack.extend(cls.__subclasses__())
    return None
