"""Policy replay: what a candidate policy file would have done with the calls already made.

Each stored call — a request a human was asked about, or a shadow-mode record of a call
that ran without asking (:mod:`signoff.shadow`) — is evaluated with the candidate config's
operator policy for its tool, by :meth:`signoff.policy.Policy.verdict` (the code the gate
and the intake use) and :func:`signoff.policy.floor` (min_role, quorum), and compared with
what happened. Nothing here writes: the history is read, the candidate is only evaluated.

The config is the operator's half of a policy: a tool's own ``Policy`` in code is not in
the history, so "run" means the config would no longer ask (the code may still), and a
tool the candidate config says nothing about is "code".
"""

from __future__ import annotations

import asyncio
import tomllib
from collections import Counter, defaultdict
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from signoff._util import parse_duration
from signoff.access import require_auditor
from signoff.config import Config, parse_config
from signoff.errors import ConfigError, InvalidArguments
from signoff.history import since as history_since
from signoff.models import (
    ApprovalRequest,
    DecisionKind,
    PolicySnapshot,
    Principal,
    Status,
    ToolCall,
)
from signoff.policy import Terms, floor
from signoff.replay_history import PastHistory
from signoff.roles import RoleLadder
from signoff.shadow import ShadowRecord, shadow_records
from signoff.stores.base import Store
from signoff.stores.history_store import Execution
from signoff.types import JSONObject

__all__ = [
    "ReplayReport",
    "Replayed",
    "candidate_from_text",
    "cutoff",
    "replay",
    "replay_store",
    "replay_stored",
    "store_history",
]

#: calls whose treatment changes that a report lists one by one; the counts cover all
MAX_LISTED = 500
PAGE = 200
#: the largest candidate policy file taken as text (the API's body, the dashboard's form)
MAX_CANDIDATE_BYTES = 256 * 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: what a candidate given as text is read for: its policies (it never sends or signs in)
_POLICY_KEYS = ("roles", "defaults", "always_require_approval", "tools", "auth")

#: the kinds of change, the loudest first
CHANGES = {
    "run_rejected": "would now run unasked, but a human rejected it",
    "deny": "would now be denied",
    "ask": "would now ask (it ran unasked)",
    "stricter": "would now ask a higher role or more approvers",
    "run": "would now run unasked",
}


@dataclass(frozen=True, slots=True)
class Replayed:
    """One past call: what happened, and what the candidate would have done."""

    id: str
    source: str  # "request" | "shadow"
    tool: str
    agent_id: str
    at: datetime
    #: approved, rejected, expired, cancelled, pending (a request), or ran (shadow mode)
    happened: str
    then_min_role: str | None
    then_quorum: int
    #: run, ask, deny — or code: the candidate config says nothing about the tool
    verdict: str
    min_role: str | None
    quorum: int
    note: str | None
    change: str | None

    def to_json(self) -> JSONObject:
        return {
            "id": self.id,
            "source": self.source,
            "tool": self.tool,
            "agent_id": self.agent_id,
            "at": self.at.isoformat(),
            "happened": self.happened,
            "then": {"min_role": self.then_min_role, "quorum": self.then_quorum},
            "verdict": self.verdict,
            "min_role": self.min_role,
            "quorum": self.quorum,
            "note": self.note,
            "change": self.change,
        }


@dataclass(slots=True)
class ReplayReport:
    since: datetime | None
    config: str | None
    total: int = 0
    #: tool → verdict → calls
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    #: tool → what happened → calls
    happened: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    changed: Counter[str] = field(default_factory=Counter)
    changes: list[Replayed] = field(default_factory=list)

    @property
    def listed_all(self) -> bool:
        return len(self.changes) == sum(self.changed.values())

    def add(self, item: Replayed) -> None:
        self.total += 1
        self.counts[item.tool][item.verdict] += 1
        self.happened[item.tool][item.happened] += 1
        if item.change is not None:
            self.changed[item.change] += 1
            if len(self.changes) < MAX_LISTED:
                self.changes.append(item)

    def to_json(self) -> JSONObject:
        order = list(CHANGES)
        changes = sorted(self.changes, key=lambda c: (order.index(c.change or "run"), c.at))
        return {
            "since": None if self.since is None else self.since.isoformat(),
            "config": self.config,
            "total": self.total,
            "tools": {
                tool: {"verdicts": dict(self.counts[tool]), "happened": dict(self.happened[tool])}
                for tool in sorted(self.counts)
            },
            "changed": {kind: self.changed[kind] for kind in order if self.changed[kind]},
            "changes": [c.to_json() for c in changes],
            "changes_truncated": not self.listed_all,
            #: what each kind of change means, loudest first (for a reader of the report)
            "change_kinds": dict(CHANGES),
        }


def cutoff(since: str | None, now: datetime) -> datetime | None:
    """The start of the replayed period: ``since`` (a duration such as ``7d``) back from
    ``now``; None (the whole history) without one, or when it reaches back further than a
    date can (``--since 99999999999d``): a longer period than the history is all of it."""
    if since is None:
        return None
    seconds = parse_duration(since)
    try:
        return now - timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        return None


async def replay(
    config: Config,
    history: AsyncIterable[ApprovalRequest | ShadowRecord],
    *,
    since: datetime | None = None,
    ledger: Sequence[Execution] | None = None,
) -> ReplayReport:
    """Evaluate ``config`` against every call in ``history`` (from ``since`` on). Where
    its limits read an agent's history (:mod:`signoff.history`), each call is judged on the
    history as it was then (:mod:`signoff.replay_history`): the calls in ``history`` before
    it (which must then reach back a limit's window before ``since``) and ``ledger``'s
    unasked runs. Without a ledger such a limit cannot be judged, and asks (fails closed)."""
    report = ReplayReport(since=since, config=config.source)
    if history_lookback(config) is None:
        async for item in history:
            if since is None or _at(item) >= since:
                report.add(await replay_one(config, item))
        return report
    items = [item async for item in history]
    past = None
    if ledger is not None:
        past = PastHistory((i for i in items if isinstance(i, ApprovalRequest)), ledger)
    for item in sorted(items, key=_at):
        if since is None or _at(item) >= since:
            report.add(await replay_one(config, item, past))
        await asyncio.sleep(0)
    return report


def history_lookback(config: Config) -> float | None:
    """How far back the longest of ``config``'s limits looks (seconds), or None."""
    found = [p.history_lookback for p in config.tools.values() if p.history_lookback is not None]
    return max(found) if found else None


def _at(item: ApprovalRequest | ShadowRecord) -> datetime:
    return item.created_at if isinstance(item, ApprovalRequest) else item.at


async def replay_one(
    config: Config, item: ApprovalRequest | ShadowRecord, past: PastHistory | None = None
) -> Replayed:
    tool, args, run, call_id = item.tool, item.args, item.run, item.tool_call_id
    operator = config.operator_policy(tool)
    # the floor alone decides the terms: what an agent proposed is not the candidate's
    floored = floor(
        Terms(),
        None if operator is None else operator.terms(),
        roles=config.roles,
        default_timeout_s=config.default_timeout_s,
    ).policy
    entry = config.tools.get(tool)
    note: str | None = None
    if entry is None:
        verdict = "code"
    else:
        history = None
        if past is not None and entry.history_lookback is not None:
            agent = item.requested_by if isinstance(item, ApprovalRequest) else run.agent_id
            history = past.at(agent, run.run_id, _at(item), entry.history_lookback)
        call = ToolCall(tool, args, tool_call_id=call_id, run=run)
        found = await entry.verdict(call, history)
        verdict, note = found.kind.value, found.note
    then_role: str | None
    if isinstance(item, ApprovalRequest):
        happened = _happened(item)
        then_role, then_quorum = item.policy.min_role, item.policy.quorum
        change = _request_change(config, verdict, happened, then_role, then_quorum, floored)
        source, at, ident = "request", item.created_at, item.id
    else:
        happened = "ran"
        then_role, then_quorum = item.min_role, item.quorum
        change = "ask" if verdict == "ask" else "deny" if verdict == "deny" else None
        source, at, ident = "shadow", item.at, item.id
    return Replayed(
        id=ident,
        source=source,
        tool=tool,
        agent_id=run.agent_id,
        at=at,
        happened=happened,
        then_min_role=then_role,
        then_quorum=then_quorum,
        verdict=verdict,
        min_role=floored.min_role if verdict in ("ask", "code") else None,
        quorum=floored.quorum,
        note=note,
        change=change,
    )


def _happened(request: ApprovalRequest) -> str:
    if request.status is Status.REJECTED and any(
        d.decision is DecisionKind.REJECT for d in request.decisions
    ):
        return "rejected"
    if request.status is Status.APPROVED and any(d.grant_id for d in request.decisions):
        return "granted"
    return str(request.status.value)


def _request_change(
    config: Config,
    verdict: str,
    happened: str,
    then_role: str,
    then_quorum: int,
    floored: PolicySnapshot,
) -> str | None:
    """How the candidate's treatment differs from a request that asked a human."""
    if verdict == "run":
        return "run_rejected" if happened == "rejected" else "run"
    if verdict == "deny":
        return "deny"
    if verdict == "ask":
        roles = config.roles
        # a role the candidate's ladder does not know ranks below all of its own
        if roles.rank(floored.min_role) > roles.rank(then_role) or floored.quorum > then_quorum:
            return "stricter"
    return None


async def store_history(
    store: Store, since: datetime | None
) -> AsyncIterator[ApprovalRequest | ShadowRecord]:
    """Every stored request created from ``since`` on, then every shadow record, read page
    by page (the event loop gets a turn between pages). A row whose body does not parse is
    left out: ``signoff audit verify`` is where it is reported."""
    after = 0
    while True:
        rows = await store.requests_page(after, PAGE)
        if not rows:
            break
        for _seq, request, _body in rows:
            if request is not None and (since is None or request.created_at >= since):
                yield request
        after = rows[-1][0]
        await asyncio.sleep(0)
    async for record in shadow_records(store, since):
        yield record


def candidate_from_text(text: str) -> Config:
    """A candidate policy file given as text (the API, the dashboard): its policies only.
    Its channels and routes are not read — a replay evaluates policies, it sends nothing —
    so a candidate copied from a live file needs none of that file's secrets. Every problem
    is InvalidArguments naming the key."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CANDIDATE_BYTES:
        raise InvalidArguments(f"config: larger than {MAX_CANDIDATE_BYTES // 1024} KiB")
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise InvalidArguments(f"config: invalid TOML: {exc}") from exc
    policies = {key: value for key, value in data.items() if key in _POLICY_KEYS}
    try:
        return parse_config(policies, source="candidate", environ={})
    except ConfigError as exc:
        raise InvalidArguments(f"config: {exc.message}") from exc


async def replay_stored(
    store: Store,
    roles: RoleLadder,
    principal: Principal,
    candidate: Config | str,
    since: str | None,
    now: datetime,
) -> ReplayReport:
    """Replay ``candidate`` (a Config, or a policy file's text) over the stored history
    from ``since`` (a duration back from ``now``) for ``principal``: the highest role's
    read, as the audit log it draws from. Nobody else's candidate is even parsed."""
    require_auditor(principal, roles, "the history for a policy replay")
    if isinstance(candidate, str):
        candidate = candidate_from_text(candidate)
    try:
        start = cutoff(since, now)
    except ConfigError as exc:
        raise InvalidArguments(f"since: {exc.message}") from exc
    return await replay_store(store, candidate, start)


async def replay_store(store: Store, candidate: Config, start: datetime | None) -> ReplayReport:
    """Replay ``candidate`` over a store's history from ``start``: its requests and shadow
    records and, where the candidate's limits read an agent's history, the ledger of
    unasked runs, read from a limit's window before ``start``."""
    lookback = history_lookback(candidate)
    if lookback is None:
        return await replay(candidate, store_history(store, start), since=start)
    read_from = None if start is None else history_since(start, lookback)
    ledger = await store.ledger(read_from or EPOCH)
    return await replay(candidate, store_history(store, read_from), since=start, ledger=ledger)
