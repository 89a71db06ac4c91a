"""signoff: a human sign-off in front of an AI agent's risky tool calls."""

from __future__ import annotations

from signoff.errors import (
    ApprovalTimeout,
    Cancelled,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidArguments,
    InvalidEdit,
    MissingDependency,
    NotFound,
    NotRun,
    Rejected,
    SignoffError,
    StoreError,
    Unauthorized,
    Unavailable,
    UnknownTool,
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
from signoff.outcome import CallStatus, Outcome
from signoff.policy import Policy
from signoff.roles import RoleLadder

__version__ = "0.1.0"

__all__ = [
    "ApprovalRequest",
    "ApprovalTimeout",
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
    "Policy",
    "Principal",
    "Rejected",
    "Risk",
    "RoleLadder",
    "Run",
    "SignoffError",
    "Status",
    "StoreError",
    "ToolCall",
    "Unauthorized",
    "Unavailable",
    "UnknownTool",
    "__version__",
    "cancel",
    "request_approval",
    "running",
    "skip",
]
