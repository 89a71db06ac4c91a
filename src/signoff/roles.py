"""The ordered ladder of approver roles (lowest first)."""

from __future__ import annotations

from collections.abc import Iterable

from signoff.errors import ConfigError

DEFAULT_ROLES = ("editor", "publisher", "admin")


class RoleLadder:
    """Roles ordered lowest first; a role admits itself and every role below it.

    An unknown or missing role ranks below every known role, so it can approve nothing.
    """

    __slots__ = ("_rank", "roles")

    def __init__(self, roles: Iterable[str] = DEFAULT_ROLES) -> None:
        self.roles: tuple[str, ...] = tuple(roles)
        if not self.roles:
            raise ConfigError("the role ladder needs at least one role")
        if len(set(self.roles)) != len(self.roles):
            raise ConfigError(f"the role ladder repeats a role: {list(self.roles)}")
        self._rank = {role: i for i, role in enumerate(self.roles)}

    @property
    def lowest(self) -> str:
        return self.roles[0]

    @property
    def highest(self) -> str:
        return self.roles[-1]

    def rank(self, role: str | None) -> int:
        return -1 if role is None else self._rank.get(role, -1)

    def check(self, role: str) -> str:
        if role not in self._rank:
            raise ConfigError(f"unknown role {role!r}; the roles are {list(self.roles)}")
        return role

    def admits(self, role: str | None, min_role: str) -> bool:
        """Whether ``role`` may act where ``min_role`` is required."""
        return self.rank(role) >= 0 and self.rank(role) >= self.rank(min_role)

    def higher(self, *roles: str | None) -> str:
        """The highest of the known roles given (the lowest role if none is given)."""
        known = [r for r in roles if r is not None and r in self._rank]
        return max(known, key=self.rank) if known else self.lowest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RoleLadder) and self.roles == other.roles

    def __hash__(self) -> int:
        return hash(self.roles)

    def __repr__(self) -> str:
        return f"RoleLadder({list(self.roles)!r})"
