"""Round trips over HTTP across several ``signoff serve`` replicas on one PostgreSQL database.

R replicas start on a fresh database (one loopback port each, the same ``SIGNOFF_SECRET``
and ``SIGNOFF_SIGNING_KEY``). C concurrent agents are spread over them: agent ``w`` gates its
calls through a remote gate on replica ``w % R``. A scripted approvers
(A = ``--approvers``, the same whatever R is: the people watching do not multiply with the
servers) follow the event stream, approver ``a`` on replica ``a % R``, as dashboards do:
each hears every request and decides the calls ``i`` with ``i % A == a``, over HTTP on the
replica after the one the call was made on, so a decision always reaches the waiting call
from another replica (with one replica, from the same one). One round trip: submit → the
approver hears it and approves over HTTP → the agent's wait resumes → consume → the tool
runs → the outcome is recorded.

    python bench/replicas.py --replicas 1,2,3 --n 2000 --concurrency 32 [--approvers 3] [--rounds 1]

Prints one JSON line per replica count: ``{"bench": "replicas", "replicas", "n",
"concurrency", "approvers", "approvals_per_s", "latency_p50_ms", "latency_p99_ms", "resume_p50_ms",
"resume_p99_ms", "replica_cpu_s_per_rt", "postgres_cpu_s_per_rt", "client_cpu_s_per_rt",
"rounds", "approvals_per_s_each"}``. With ``--rounds K`` the counts run in turn K times
(forwards, then backwards), and each line holds the medians of its count's K runs, with each
run's throughput in ``approvals_per_s_each``.
Latency is one whole round trip as the agent sees it (the call starting → its outcome);
resume latency runs from the approver's decision being accepted to the tool body starting.
CPU seconds per round trip, over the timed part: of all the replica processes together; of
the PostgreSQL processes serving the database plus the server's WAL writer, checkpointer
and background writer (read from /proc: null when the server is on another host); of this
process (the agents and approvers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from signoff import CallStatus, Gate, Policy, Run
from signoff.client import Client
from signoff.events import EventType

from _common import (
    POSTGRES_ADMIN_URL,
    cpu_seconds,
    database_name,
    drop_postgres_database,
    fresh_postgres_database,
    median,
    percentile,
)
from _http import Server, running_servers, signing_seed, tokens

#: PostgreSQL's own processes that every database's writes keep busy
BACKGROUND = ["walwriter", "checkpointer", "background writer"]
WARM_UP = 20  # calls per replica before the timed part


class PostgresCpu:
    """CPU time of the PostgreSQL processes serving one database (and of the server's
    background writers), sampled from /proc while the load runs, so that a backend that
    exits before the end still counts up to its last sample. Its own connection is to the
    maintenance database, so its backend is not counted."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}

    async def __aenter__(self) -> PostgresCpu:
        self._conn = await psycopg.AsyncConnection.connect(POSTGRES_ADMIN_URL, autocommit=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop_sampling()
        if self._conn is not None:
            await self._conn.close()

    async def _sample(self) -> dict[int, float]:
        assert self._conn is not None
        cursor = await self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s OR backend_type = ANY(%s)",
            (self.database, BACKGROUND),
        )
        readings = {pid: cpu_seconds(pid) for (pid,) in await cursor.fetchall()}
        return {pid: cpu for pid, cpu in readings.items() if cpu is not None}

    async def start(self, interval: float = 0.25) -> None:
        """Take the baseline and sample every ``interval`` seconds until :meth:`stop`."""
        self._start = await self._sample()
        self._last = dict(self._start)

        async def sample() -> None:
            while True:
                await asyncio.sleep(interval)
                self._last.update(await self._sample())

        self._sampler = asyncio.create_task(sample())

    async def _stop_sampling(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None

    async def stop(self) -> float | None:
        """CPU seconds since :meth:`start` (a backend first seen later counts from zero);
        None when no process could be read (the server is on another host)."""
        await self._stop_sampling()
        self._last.update(await self._sample())
        if not self._last:
            return None
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in self._last.items())


def replicas_cpu(servers: Sequence[Server]) -> float:
    return sum(cpu_seconds(server.process.pid) or 0.0 for server in servers)


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Load:
    """The agents and the approvers of one run, and what they saw."""

    def __init__(self, servers: Sequence[Server], approvers: int) -> None:
        self.count = len(servers)
        self.approver_count = approvers
        agent_token, approver_token = tokens()
        self.gates = [Gate(server.url, token=agent_token) for server in servers]
        #: the approvers' connections, one per replica (shared: each is a connection pool)
        self.approvers = [Client(server.url, approver_token) for server in servers]
        for gate in self.gates:
            gate.tool(name="transfer", policy=Policy(min_role="editor"))(self.transfer)
        self.replica_of: dict[int, int] = {}  # call i → the replica its agent talks to
        self.request_of: dict[int, str] = {}
        self.accepted_at: dict[str, float] = {}
        self.body_started: dict[int, float] = {}
        self.latency_ms: list[float] = []

    async def transfer(self, i: int, amount: float) -> int:
        self.body_started[i] = time.perf_counter()
        return i

    async def _decide(self, client: Client, request_id: str) -> None:
        await client.decide(request_id, "approve")
        self.accepted_at[request_id] = time.perf_counter()

    async def approver(self, a: int, ready: asyncio.Event) -> None:
        """Approver ``a``: follows replica ``a % R``'s stream and decides its share of the
        calls over HTTP on the replica after the one each was made on."""
        deciding: set[asyncio.Task[None]] = set()
        async with self.approvers[a % self.count].follow(types=[EventType.CREATED]) as feed:
            ready.set()
            async for event in feed:
                if event.type != EventType.CREATED:
                    continue
                i = event.snapshot.args["i"]
                if i % self.approver_count != a:
                    continue  # another approver's share
                self.request_of[i] = event.request_id
                to = self.approvers[(self.replica_of[i] + 1) % self.count]
                task = asyncio.create_task(self._decide(to, event.request_id))
                deciding.add(task)
                task.add_done_callback(deciding.discard)

    async def agent(self, w: int, indices: range, *, timed: bool) -> None:
        """Agent ``w``: its calls one after another, through replica ``w % R``."""
        r = w % self.count
        run = Run(agent_id=f"bench-agent-{w}", run_id=f"bench-{w}")
        for i in indices:
            self.replica_of[i] = r
            started = time.perf_counter()
            outcome = await self.gates[r].call(
                "transfer", {"i": i, "amount": 10.0}, tool_call_id=f"c{i}", run=run
            )
            assert outcome.status is CallStatus.EXECUTED, outcome
            if timed:
                self.latency_ms.append((time.perf_counter() - started) * 1000)

    def resume_ms(self) -> list[float]:
        return [
            max(0.0, self.body_started[i] - self.accepted_at[self.request_of[i]]) * 1000
            for i in self.body_started
            if i in self.request_of and self.request_of[i] in self.accepted_at
        ]

    async def aclose(self) -> None:
        for gate in self.gates:
            await gate.aclose()
        for client in self.approvers:
            await client.aclose()


async def drive(
    servers: Sequence[Server], db_url: str, n: int, concurrency: int, approvers: int
) -> dict[str, Any]:
    load = Load(servers, approvers)
    ready = [asyncio.Event() for _ in range(approvers)]
    listeners = [asyncio.create_task(load.approver(a, ready[a])) for a in range(approvers)]
    try:
        await asyncio.gather(*(event.wait() for event in ready))
        await asyncio.sleep(0.3)  # the streams are open on the servers before the first call
        # warm up connections and caches, on every replica
        await asyncio.gather(
            *(
                load.agent(r, range(n + r * WARM_UP, n + (r + 1) * WARM_UP), timed=False)
                for r in range(load.count)
            )
        )
        load.body_started.clear()
        load.accepted_at.clear()
        per = n // concurrency
        async with PostgresCpu(database_name(db_url)) as pg_cpu:
            await pg_cpu.start()
            replica_before, client_before = replicas_cpu(servers), client_cpu()
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    load.agent(w, range(w * per, (w + 1) * per), timed=True)
                    for w in range(concurrency)
                )
            )
            elapsed = time.perf_counter() - started
            replica_s = replicas_cpu(servers) - replica_before
            client_s = client_cpu() - client_before
            postgres_s = await pg_cpu.stop()
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        await load.aclose()
    total = per * concurrency
    resumes = load.resume_ms()
    return {
        "bench": "replicas",
        "replicas": load.count,
        "n": total,
        "concurrency": concurrency,
        "approvers": approvers,
        "approvals_per_s": round(total / elapsed, 1),
        "latency_p50_ms": round(percentile(load.latency_ms, 50), 3),
        "latency_p99_ms": round(percentile(load.latency_ms, 99), 3),
        "resume_p50_ms": round(percentile(resumes, 50), 3),
        "resume_p99_ms": round(percentile(resumes, 99), 3),
        "replica_cpu_s_per_rt": round(replica_s / total, 6),
        "postgres_cpu_s_per_rt": None if postgres_s is None else round(postgres_s / total, 6),
        "client_cpu_s_per_rt": round(client_s / total, 6),
    }


def measure(replicas: int, n: int, concurrency: int, approvers: int) -> dict[str, Any]:
    """One run on a database of its own; the replicas stopped and the database dropped on
    the way out, however it is left."""
    with tempfile.TemporaryDirectory(prefix="signoff-bench-") as folder:
        db_url = fresh_postgres_database()
        try:
            env = {"SIGNOFF_SIGNING_KEY": signing_seed()}
            with running_servers(replicas, db_url, folder, env) as servers:
                return asyncio.run(drive(servers, db_url, n, concurrency, approvers))
        finally:
            drop_postgres_database(db_url)


#: what stays the same from round to round (the rest is each round's median)
FIXED = {"bench", "replicas", "n", "concurrency", "approvers"}


def in_rounds(
    counts: list[int], rounds: int, n: int, concurrency: int, approvers: int
) -> Iterator[dict[str, Any]]:
    """Per replica count, its result; with several rounds, the counts are run in turn
    (forwards, then backwards) and each line holds the medians, so that the machine's drift
    over the minutes of a run does not land on one count."""
    if rounds == 1:
        for count in counts:
            yield single(measure(count, n, concurrency, approvers))
        return
    runs: dict[int, list[dict[str, Any]]] = {count: [] for count in counts}
    for k in range(rounds):
        for count in counts if k % 2 == 0 else counts[::-1]:
            runs[count].append(measure(count, n, concurrency, approvers))
    for count in counts:
        yield summary(runs[count])


def single(result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "rounds": 1, "approvals_per_s_each": [result["approvals_per_s"]]}


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    line: dict[str, Any] = {}
    for key, value in results[0].items():
        values = [result[key] for result in results]
        if key in FIXED:
            line[key] = value
        elif None in values:
            line[key] = None
        else:
            line[key] = round(median(values), 6)
    line["rounds"] = len(results)
    line["approvals_per_s_each"] = [result["approvals_per_s"] for result in results]
    return line


def replica_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected counts such as 1 or 1,2,3, not {text!r}")
    return list(dict.fromkeys(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=replica_counts, default=[2], help="e.g. 2 or 1,2,3")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--approvers", type=int, default=3, help="approvers following the streams, whatever R"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="run the counts in turn this many times: medians"
    )
    args = parser.parse_args()
    if not 1 <= args.concurrency <= args.n:
        parser.error("--concurrency must be between 1 and --n")
    if args.approvers < 1:
        parser.error("--approvers must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    # SIGTERM cleans up as Ctrl-C does: replicas stopped, database dropped
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for line in in_rounds(args.replicas, args.rounds, args.n, args.concurrency, args.approvers):
            print(json.dumps(line), flush=True)
    except KeyboardInterrupt:
        print("interrupted: replicas stopped, database dropped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
