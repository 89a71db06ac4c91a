"""Standing grants: an approval that also approves the same agent's later calls of a tool.

A grant is made by an approver who approves a request without editing it (CONTRACT.md §9):
for ``ttl`` it covers the same agent's calls of the same tool, with identical arguments
(``scope="identical"``: bound to the arguments' digest) or any (``scope="tool"``). Both are
bound to the tool's schema fingerprint (a digest of the request's ``args_schema``), so a
tool whose schema changed is a new tool that nobody granted. Values only: whether a grant may
be made, or covers a request, is decided in :mod:`signoff.lifecycle`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from signoff.canonical import digest
from signoff.errors import InvalidArguments
from signoff.types import JSONObject

#: the shortest and the longest a grant may last: below a minute it saves nobody a click;
#: beyond a week it is a policy change, which belongs in the operator's config, not a click
MIN_TTL_S = 60
MAX_TTL_S = 7 * 24 * 3600

GrantScope = Literal["identical", "tool"]
SCOPES: tuple[str, ...] = ("identical", "tool")

_TTL = re.compile(r"^\s*(\d{1,9})\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class GrantAsk(BaseModel):
    """What an approver asks for with an approval: how long, and how wide."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttl_s: int
    scope: GrantScope = "identical"


class Grant(BaseModel):
    """A standing grant as stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    tool: str
    #: the agent (the origin request's ``requested_by``) whose calls it covers
    agent: str
    scope: GrantScope
    #: the arguments it covers (``scope="identical"``), else None
    args_digest: str | None = None
    schema_fingerprint: str
    granted_by: str
    #: the granter's role when they granted: the grant never covers a call it does not meet
    role: str | None = None
    #: the request whose approval made it
    request_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def live(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def to_dict(self, now: datetime) -> JSONObject:
        """The API's grant object, with whether it is live at ``now`` (``active``)."""
        return {**self.model_dump(mode="json"), "active": self.live(now)}


def schema_fingerprint(args_schema: JSONObject | None) -> str:
    """The tool's schema as a grant is bound to it (no schema is a schema too)."""
    return digest({"args_schema": args_schema})


def parse_ttl(value: object) -> int:
    """A grant's time to live in seconds, from ``"90s"``, ``"30m"``, ``"1h"``, ``"2d"`` or
    a number of seconds; InvalidArguments outside [MIN_TTL_S, MAX_TTL_S]."""
    if isinstance(value, bool):
        raise InvalidArguments("grant ttl must be a duration such as '1h' or '30m'")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (match := _TTL.match(value)):
        seconds = int(match[1]) * _UNIT_S[match[2]]
    else:
        raise InvalidArguments("grant ttl must be a duration such as '1h' or '30m'")
    if not MIN_TTL_S <= seconds <= MAX_TTL_S:
        raise InvalidArguments(
            f"grant ttl must be between {MIN_TTL_S}s and {MAX_TTL_S // 86400} days; got {seconds}s",
            min_ttl_s=MIN_TTL_S,
            max_ttl_s=MAX_TTL_S,
        )
    return seconds


def parse_ask(value: object) -> GrantAsk | None:
    """A decision's ``grant`` member (``{"ttl": "1h", "scope": "tool"}``), or None when absent;
    InvalidArguments for anything else."""
    if value is None:
        return None
    if isinstance(value, GrantAsk):
        return value
    if not isinstance(value, dict):
        raise InvalidArguments('grant must be an object such as {"ttl": "1h"}')
    unknown = sorted(set(value) - {"ttl", "scope"})
    if unknown:
        raise InvalidArguments(f"grant: unknown members {unknown}")
    if "ttl" not in value:
        raise InvalidArguments("grant needs a ttl, such as '1h'")
    return GrantAsk(ttl_s=parse_ttl(value["ttl"]), scope=_scope(value.get("scope", "identical")))


def _scope(value: object) -> GrantScope:
    if value == "identical":
        return "identical"
    if value == "tool":
        return "tool"
    raise InvalidArguments(f"grant scope must be one of {list(SCOPES)}")


def parse_cli(text: str) -> GrantAsk:
    """``1h`` (identical calls) or ``1h:tool`` (any call of the tool), as the CLI takes it."""
    ttl, _, scope = text.partition(":")
    return GrantAsk(ttl_s=parse_ttl(ttl), scope=_scope(scope or "identical"))


def ends(now: datetime, ask: GrantAsk) -> datetime:
    return now + timedelta(seconds=ask.ttl_s)
