"""The benchmarks run and print the JSON line CONTRACT §6 describes (numbers not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_bench(*args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    parsed: dict[str, object] = json.loads(lines[0])
    return parsed


@pytest.mark.slow
@pytest.mark.parametrize("db", ["memory", "sqlite", "postgres"])
def test_roundtrip(db: str) -> None:
    out = run_bench("bench/roundtrip.py", "--n", "40", "--db", db, "--mode", "inproc")
    assert set(out) == {
        "n",
        "db",
        "mode",
        "concurrency",
        "approvals_per_s",
        "resume_p50_ms",
        "resume_p99_ms",
        "peak_rss_mb",
    }
    assert (out["n"], out["db"], out["mode"], out["concurrency"]) == (40, db, "inproc", 1)


@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_roundtrip_over_http(db: str) -> None:
    out = run_bench(
        "bench/roundtrip.py", "--n", "20", "--db", db, "--mode", "http", "--concurrency", "2"
    )
    assert (out["n"], out["db"], out["mode"], out["concurrency"]) == (20, db, "http", 2)
    assert isinstance(out["peak_rss_mb"], float) and out["peak_rss_mb"] > 0


@pytest.mark.slow
def test_passthrough() -> None:
    out = run_bench("bench/passthrough.py", "--n", "200")
    assert set(out) == {"n", "gated_us_per_call", "direct_us_per_call"}


@pytest.mark.slow
def test_passthrough_in_each_framework() -> None:
    out = run_bench("bench/passthrough.py", "--n", "200", "--frameworks", "--framework-n", "5")
    frameworks = out["frameworks"]
    assert isinstance(frameworks, dict)
    assert set(frameworks) == {"langgraph", "pydantic-ai", "openai-agents"}
    for measured in frameworks.values():
        assert set(measured) == {"tool_call", "agent_run", "overhead_us_per_call"}


@pytest.mark.slow
def test_the_langgraph_peer() -> None:
    out = run_bench("bench/peers/langgraph_hitl.py", "--n", "20")
    assert set(out) == {"n", "peer", "approvals_per_s", "resume_p50_ms", "resume_p99_ms"}
    assert (out["n"], out["peer"]) == (20, "langgraph-sqlite")


@pytest.mark.slow
def test_passthrough_through_the_mcp_proxy() -> None:
    out = run_bench("bench/passthrough.py", "--n", "200", "--mcp", "5")
    assert set(out) == {
        "n",
        "gated_us_per_call",
        "direct_us_per_call",
        "mcp_n",
        "mcp_stdio_direct_us_per_call",
        "mcp_stdio_proxy_us_per_call",
        "mcp_inproc_direct_us_per_call",
        "mcp_inproc_proxy_us_per_call",
    }
    assert out["mcp_n"] == 5


@pytest.mark.slow
def test_waiters() -> None:
    out = run_bench("bench/waiters.py", "--n", "50")
    assert set(out) == {"n", "rss_mb_per_1000_waiting", "resolve_all_s"}


@pytest.mark.slow
def test_roundtrip_versus_the_langgraph_peer() -> None:
    out = run_bench(
        "bench/roundtrip.py", "--versus", "langgraph", "--rounds", "1", "--n", "30", "--peer-n", "5"
    )
    assert set(out) == {
        "bench",
        "peer",
        "rounds",
        "n",
        "peer_n",
        "synchronous",
        "signoff_rps",
        "peer_rps",
        "ratio",
        "ratios",
        "signoff_resume_p50_ms",
        "signoff_resume_p99_ms",
        "peer_resume_p50_ms",
        "peer_resume_p99_ms",
    }
    assert (out["bench"], out["peer"], out["rounds"], out["n"], out["peer_n"]) == (
        "roundtrip_versus",
        "langgraph-sqlite",
        1,
        30,
        5,
    )
    for key in ("signoff_rps", "peer_rps", "ratio"):
        value = out[key]
        assert isinstance(value, float) and value > 0, (key, value)
    ratios = out["ratios"]
    assert isinstance(ratios, list) and len(ratios) == 1


@pytest.mark.slow
def test_replicas() -> None:
    out = run_bench(
        "bench/replicas.py",
        "--replicas",
        "2",
        "--n",
        "20",
        "--concurrency",
        "4",
        "--approvers",
        "3",
    )
    assert set(out) == {
        "bench",
        "replicas",
        "n",
        "concurrency",
        "approvers",
        "approvals_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
        "resume_p50_ms",
        "resume_p99_ms",
        "replica_cpu_s_per_rt",
        "postgres_cpu_s_per_rt",
        "client_cpu_s_per_rt",
        "rounds",
        "approvals_per_s_each",
    }
    assert (out["bench"], out["replicas"], out["n"], out["concurrency"]) == ("replicas", 2, 20, 4)
    assert out["approvers"] == 3
    assert out["rounds"] == 1 and out["approvals_per_s_each"] == [out["approvals_per_s"]]
    for key, value in out.items():
        if key not in {"bench", "approvals_per_s_each"}:
            assert isinstance(value, int | float) and value > 0, (key, value)


@pytest.mark.slow
def test_deliveries() -> None:
    out = run_bench(
        "bench/deliveries.py", "--n", "200", "--calls", "20", "--rounds", "2", "--db", "sqlite"
    )
    assert set(out) == {
        "n",
        "db",
        "deliveries_per_s",
        "calls",
        "rounds",
        "down_call_ms",
        "up_call_ms",
        "no_channels_call_ms",
        "down_ratio",
        "up_ratio",
        "down_ratios",
    }
    assert (out["n"], out["db"], out["calls"], out["rounds"]) == (200, "sqlite", 20, 2)
