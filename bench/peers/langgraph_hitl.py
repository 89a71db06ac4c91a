"""LangGraph's own approval round trip: interrupt() in a tool, Command(resume=...), on SQLite.

The peer to ``bench/roundtrip.py --db sqlite --mode inproc``, measured the same way: one
round trip is a graph run reaching a tool whose body is guarded by ``interrupt()`` → the
checkpoint is written to a SQLite file (``SqliteSaver``, langgraph-checkpoint-sqlite) → "the
approver" resumes the thread with ``Command(resume=...)`` → the tool node re-executes, the
interrupt hands back the decision, and the tool body runs. Resume latency runs from the
resume call starting to the tool body starting. N round trips, one after another, each on its
own thread. What LangGraph does not do here, and signoff does, is not counted for or against
it: approver identity and roles, the audit log, timeouts, claiming an approval once.

    python bench/peers/langgraph_hitl.py --n 2000

Prints one JSON line: {"n", "peer": "langgraph-sqlite", "approvals_per_s", "resume_p50_ms",
"resume_p99_ms"}. The peer's version is pinned in bench/peers/requirements.txt.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/_common.py

from _common import percentile


def measure(n: int, folder: str) -> dict[str, Any]:
    body_started: dict[int, float] = {}

    @tool
    def transfer(i: int, amount: float) -> str:
        """Transfer money (asks a human first)."""
        decision = interrupt({"tool": "transfer", "args": {"i": i, "amount": amount}})
        if decision != "approve":
            return "rejected"
        body_started[i] = time.perf_counter()
        return f"transferred {amount}"

    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode([transfer]))
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)

    with SqliteSaver.from_conn_string(f"{folder}/checkpoints.db") as saver:
        graph = builder.compile(checkpointer=saver)

        def round_trip(i: int) -> float:
            config: Any = {"configurable": {"thread_id": f"t{i}"}}
            call = {"name": "transfer", "args": {"i": i, "amount": 10.0}, "id": f"c{i}"}
            turn = AIMessage(content="", tool_calls=[{**call, "type": "tool_call"}])
            paused = graph.invoke({"messages": [turn]}, config)
            assert "__interrupt__" in paused, paused
            resumed_at = time.perf_counter()  # the approver resumes the thread
            graph.invoke(Command(resume="approve"), config)
            return resumed_at

        for i in range(n, n + 50):  # warm up outside the measurement
            round_trip(i)
        body_started.clear()
        resumed: dict[int, float] = {}
        started = time.perf_counter()
        for i in range(n):
            resumed[i] = round_trip(i)
        elapsed = time.perf_counter() - started
    latencies = [(body_started[i] - resumed[i]) * 1000 for i in range(n)]
    return {
        "n": n,
        "peer": "langgraph-sqlite",
        "approvals_per_s": round(n / elapsed, 1),
        "resume_p50_ms": round(percentile(latencies, 50), 3),
        "resume_p99_ms": round(percentile(latencies, 99), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="peer-langgraph-") as folder:
        print(json.dumps(measure(args.n, folder)))


if __name__ == "__main__":
    main()
