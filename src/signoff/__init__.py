"""signoff: a human sign-off in front of an AI agent's risky tool calls."""

from __future__ import annotations

from signoff._version import __version__
from signoff.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidArguments,
    InvalidEdit,
    MissingDependency,
    NotFound,
    PayloadTooLarge,
    PolicyDenied,
    RequestTimeout,
    SignoffError,
    StoreError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    UnknownTool,
    UsageError,
)
from signoff.gate import Gate, GatedTool, running
from signoff.hooks import cancel, request_approval, skip
from signoff.models import (
    ApprovalRequest,
    Decision,
    DecisionKind,
    Principal,
    Risk,
    Run,
    Status,
    ToolCall,
)
from signoff.outcome import ApprovalTimeout, CallStatus, Cancelled, NotRun, Outcome, Rejected
from signoff.policy import Policy
from signoff.roles import RoleLadder

__all__ = [
    "ApprovalRequest",
    "ApprovalTimeout",
    "BadRequest",
    "CallStatus",
    "Cancelled",
    "ConfigError",
    "Conflict",
    "Decision",
    "DecisionKind",
    "Forbidden",
    "Gate",
    "GatedTool",
    "InvalidArguments",
    "InvalidEdit",
    "MissingDependency",
    "NotFound",
    "NotRun",
    "Outcome",
    "PayloadTooLarge",
    "Policy",
    "PolicyDenied",
    "Principal",
    "Rejected",
    "RequestTimeout",
    "Risk",
    "RoleLadder",
    "Run",
    "SignoffError",
    "Status",
    "StoreError",
    "TooManyRequests",
    "ToolCall",
    "Unauthorized",
    "Unavailable",
    "UnknownTool",
    "UsageError",
    "__version__",
    "cancel",
    "request_approval",
    "running",
    "skip",
]
