"""Who may read what: the read side's rules (deciding is the lifecycle's).

An agent reads its own requests and runs; an approver reads with a role the ladder knows (no
known role, no access); the audit log is the highest role's.
"""

from __future__ import annotations

from signoff.errors import Forbidden
from signoff.models import Principal
from signoff.roles import RoleLadder


def require_reader(principal: Principal, roles: RoleLadder) -> None:
    """Raise Forbidden unless ``principal`` may read requests at all."""
    if principal.kind == "approver" and roles.rank(principal.role) < 0:
        raise Forbidden(
            f"your role {principal.role!r} is not one of {list(roles.roles)}: "
            "no known role, no access"
        )


def require_auditor(principal: Principal, roles: RoleLadder, what: str = "the audit log") -> None:
    """Raise Forbidden unless ``principal`` may read the audit log (or ``what``: the
    highest role's other reads, such as the deliveries)."""
    if principal.kind != "approver" or principal.role != roles.highest:
        raise Forbidden(f"reading {what} needs the role {roles.highest!r}")
