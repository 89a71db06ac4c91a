"""End to end: a real server, an agent process on the remote gate, decisions from the CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

from tests.acceptance.conftest import Served, finish

pytestmark = pytest.mark.slow

REFUND = {"order_id": "ORD-7", "amount": 250}


def one_line_error(result: object, fragment: str) -> None:
    assert result.returncode != 0  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    assert lines[0].startswith("signoff: ")
    assert fragment in lines[0], lines[0]


def test_approve_from_another_process_releases_the_agent(served: Served) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    agent = served.agent(REFUND)
    [request] = served.pending(publisher)
    assert request["tool"] == "issue_refund" and request["reason"] == "Refund $250.0 for ORD-7"
    # an 80-column terminal: the digest stays whole on one line, to copy into approve --seen
    narrow = {"COLUMNS": "80"}
    shown = served.signoff("show", request["id"], token=publisher, check=True, env=narrow).stdout
    assert "issue_refund" in shown and "Refund $250.0 for ORD-7" in shown
    digest = f"Arguments digest: {request['args_digest']} (approve --seen checks it)"
    assert digest in shown.splitlines()
    approved = served.signoff(
        "approve", request["id"], "--reason", "fine", token=publisher, check=True
    )
    assert f"{request['id']}: approved" in approved.stdout
    result = finish(agent)
    assert result["status"] == "executed"
    assert result["executed_args"] == [{"order_id": "ORD-7", "amount": 250.0}]
    assert json.loads(result["to_model"]) == {"refund_id": "rf_ord-7", "amount": 250.0}
    decided = json.loads(
        served.signoff("show", request["id"], "--json", token=publisher, check=True).stdout
    )
    assert decided["decisions"][0]["via"] == "cli"
    assert decided["outcome"]["status"] == "succeeded"


def test_reject_tells_the_model_why(served: Served) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    agent = served.agent(REFUND)
    [request] = served.pending(publisher)
    served.signoff(
        "reject", request["id"], "--reason", "Amount exceeds limit", token=publisher, check=True
    )
    result = finish(agent)
    assert result["status"] == "rejected"
    assert result["executed_args"] == []
    assert json.loads(result["to_model"]) == {
        "error": "approval_rejected",
        "message": "Refund was not approved. Reason: Amount exceeds limit",
        "tool": "issue_refund",
        "parameters": {"order_id": "ORD-7", "amount": 250.0},
    }


def test_respond_from_the_cli_answers_the_agent_without_running_the_tool(
    served: Served,
) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    agent = served.agent(REFUND)
    [request] = served.pending(publisher)
    answer = {"status": "refunded", "note": "done by hand in the CRM"}
    responded = served.signoff(
        "respond", request["id"], "--response", json.dumps(answer), token=publisher, check=True
    )
    assert f"{request['id']}: responded" in responded.stdout
    result = finish(agent)
    assert result["status"] == "responded"
    assert result["executed_args"] == []
    assert json.loads(result["to_model"]) == answer


def test_approve_with_edits(served: Served) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    agent = served.agent(REFUND)
    [request] = served.pending(publisher)
    served.signoff("approve", request["id"], "--set", "amount=100", token=publisher, check=True)
    result = finish(agent)
    assert result["executed_args"] == [{"order_id": "ORD-7", "amount": 100.0}]
    told = json.loads(result["to_model"])
    assert told["approval"]["modified_by_approver"] == {
        "amount": {"proposed": 250.0, "approved": 100}
    }


def test_editing_a_field_that_is_not_editable_is_refused(served: Served) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    served.agent(REFUND)
    [request] = served.pending(publisher)
    result = served.signoff("approve", request["id"], "--set", "order_id=X", token=publisher)
    one_line_error(result, "not editable")


def test_timeout(served: Served) -> None:
    agent = served.agent(REFUND, timeout="1s")
    result = finish(agent)
    assert result["status"] == "timeout"
    assert json.loads(result["to_model"])["message"] == "Approval request timed out after 1 second"


def test_batch_decisions(served: Served) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    agents = [served.agent(REFUND, call_id=f"toolu_{i}") for i in range(3)]
    requests = served.pending(publisher, count=3)
    response = httpx.post(
        f"{served.url}/v1/decisions",
        headers={"Authorization": f"Bearer {publisher}"},
        json={"ids": [r["id"] for r in requests], "decision": "approve"},
        timeout=30,
    )
    assert [r["status"] for r in response.json()["results"]] == [200, 200, 200]
    assert all(finish(a)["status"] == "executed" for a in agents)


def test_a_too_low_role_cannot_release_it(served: Served) -> None:
    editor = served.token("--sub", "erin", "--role", "editor")
    publisher = served.token("--sub", "paul", "--role", "publisher")
    agent = served.agent(REFUND)
    [request] = served.pending(publisher)
    one_line_error(served.signoff("approve", request["id"], token=editor), "needs 'publisher'")
    assert agent.poll() is None  # still waiting
    served.signoff("approve", request["id"], token=publisher, check=True)
    assert finish(agent)["status"] == "executed"


def test_the_remote_gate_survives_a_server_restart(served: Served) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    agent = served.agent(REFUND)
    [request] = served.pending(publisher)
    served.stop(signal.SIGKILL)
    time.sleep(1.0)  # the agent's long-poll breaks; it must keep trying, not run the tool
    assert agent.poll() is None
    served.start()
    served.signoff("approve", request["id"], token=publisher, check=True)
    result = finish(agent)
    assert result["status"] == "executed"
    assert result["request_id"] == request["id"]  # the same request, not a second one


def test_sse_replay_against_the_real_server(served: Served) -> None:
    import asyncio

    from signoff.client import Client

    publisher = served.token("--sub", "paul", "--role", "publisher")
    served.agent(REFUND, call_id="a")
    [first] = served.pending(publisher)
    served.signoff("approve", first["id"], token=publisher, check=True)

    async def read(after: int, n: int) -> list[tuple[int, str]]:
        client = Client(served.url, publisher)
        got: list[tuple[int, str]] = []
        try:
            async with client.follow(after=after) as feed:
                async for event in feed:
                    got.append((event.id, event.type))
                    if len(got) == n:
                        break
        finally:
            await client.aclose()
        return got

    everything = asyncio.run(asyncio.wait_for(read(0, 4), 20))
    assert [t for _, t in everything] == [
        "request.created",
        "request.decided",
        "request.consumed",
        "request.outcome",
    ]
    tail = asyncio.run(asyncio.wait_for(read(everything[1][0], 2), 20))
    assert tail == everything[2:]


# -- the command's own contract ------------------------------------------------------------------


def test_tokens(served: Served) -> None:
    agent = served.token("--agent", "bot", "--ttl", "1h")
    approver = served.token("--sub", "alice", "--role", "admin")
    assert agent.count(".") == 2 and approver.count(".") == 2
    assert (
        httpx.get(
            f"{served.url}/v1/requests", headers={"Authorization": f"Bearer {approver}"}
        ).status_code
        == 200
    )
    one_line_error(served.signoff("token", "--sub", "alice"), "needs --role")
    one_line_error(served.signoff("token", "--sub", "a", "--role", "king"), "unknown role 'king'")
    one_line_error(served.signoff("token", "--agent", "a", "--sub", "b"), "either")
    one_line_error(served.signoff("token", "--agent", "a", "--ttl", "forever"), "invalid duration")


def test_cli_errors_are_one_line(served: Served, tmp_path: Path) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    one_line_error(
        served.signoff("show", "apr_nope", token=publisher), "no approval request apr_nope"
    )
    one_line_error(served.signoff("approve", "apr_nope", token=publisher), "no approval request")
    one_line_error(served.signoff("pending", token="not-a-token"), "malformed token")
    one_line_error(served.signoff("pending"), "no token")
    one_line_error(
        served.signoff("approve", "apr_x", "--set", "amount", token=publisher), "malformed --set"
    )
    one_line_error(served.signoff("reject", "apr_x", token=publisher), "--reason")
    down = dict(served.env, SIGNOFF_URL="http://127.0.0.1:9", SIGNOFF_TOKEN=publisher)
    import subprocess

    for command in ("pending", "watch"):
        result = subprocess.run(
            [sys.executable, "-m", "signoff", command],
            env=down,
            capture_output=True,
            text=True,
            timeout=60,
        )
        one_line_error(result, "cannot reach the signoff server")
    one_line_error(served.signoff("watch", token="not-a-token"), "malformed token")


def test_pending_table_and_json(served: Served) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    assert "Nothing is waiting" in served.signoff("pending", token=publisher, check=True).stdout
    served.agent(REFUND)
    [request] = served.pending(publisher)
    table = served.signoff("pending", token=publisher, check=True).stdout
    assert request["id"] in table and "issue_refund" in table


def test_audit_verify_and_export(served: Served) -> None:
    admin = served.token("--sub", "ada", "--role", "admin")
    publisher = served.token("--sub", "paul", "--role", "publisher")
    agent = served.agent(REFUND)
    [request] = served.pending(admin)
    served.signoff("approve", request["id"], token=publisher, check=True)
    finish(agent)
    verified = served.signoff("audit", "verify", token=admin, check=True).stdout
    assert "intact: 4 events" in verified
    as_json = json.loads(
        served.signoff("audit", "verify", "--json", token=admin, check=True).stdout
    )
    assert as_json["ok"] is True and as_json["events"] == 4
    lines = served.signoff(
        "audit", "export", "--format", "jsonl", token=admin, check=True
    ).stdout.splitlines()
    assert [json.loads(line)["type"] for line in lines] == [
        "request.created",
        "request.approved",
        "request.consumed",
        "request.outcome",
    ]
    one_line_error(served.signoff("audit", "verify", token=publisher), "needs the role 'admin'")
    one_line_error(
        served.signoff("audit", "export", "--format", "csv", token=admin), "unknown format"
    )


def _sealed(served: Served, admin: str) -> dict[str, Any]:
    """The server seals every second: wait until everything is."""
    deadline = time.monotonic() + 15
    while True:
        result: dict[str, Any] = json.loads(
            served.signoff("audit", "verify", "--json", token=admin).stdout
        )
        if result["unsealed"] == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_checkpoints_kept_elsewhere_find_a_cut_log_and_an_altered_export(served: Served) -> None:
    """The whole custody chain from the command line: export the signed checkpoints and the
    log, verify the server's log and the exported one against them, then find a tail cut
    from the database, and an exported log altered or cut, with one line on stderr each."""
    admin = served.token("--sub", "ada", "--role", "admin")
    publisher = served.token("--sub", "paul", "--role", "publisher")
    for n in range(3):
        agent = served.agent({**REFUND, "amount": 250 + n}, call_id=f"toolu_{n}")
        [request] = served.pending(admin)
        served.signoff("approve", request["id"], token=publisher, check=True)
        finish(agent)
    assert _sealed(served, admin)["sealed"] == 12
    kept = served.folder / "checkpoints.json"
    wrote = served.signoff("audit", "checkpoint", "export", "--out", str(kept), token=admin)
    assert wrote.returncode == 0 and "size 12" in wrote.stdout, wrote.stderr
    log = served.folder / "audit.jsonl"
    log.write_text(served.signoff("audit", "export", token=admin, check=True).stdout)
    online = served.signoff("audit", "verify", "--against", str(kept), token=admin, check=True)
    assert "intact: 12 events" in online.stdout
    offline = served.signoff("audit", "verify", "--log", str(log), "--against", str(kept))
    assert offline.returncode == 0 and "intact: 12 events" in offline.stdout, offline.stderr

    lines = log.read_text().splitlines()
    altered = served.folder / "altered.jsonl"
    altered.write_text("\n".join([*lines[:5], lines[5].replace("paul", "mallory"), *lines[6:]]))
    one_line_error(
        served.signoff("audit", "verify", "--log", str(altered), "--against", str(kept)),
        "broken at seq 6",
    )
    cut = served.folder / "cut.jsonl"
    cut.write_text("\n".join(lines[:8]))
    one_line_error(
        served.signoff("audit", "verify", "--log", str(cut), "--against", str(kept)), "cut off"
    )
    one_line_error(served.signoff("audit", "verify", "--log", str(log)), "needs --against")
    one_line_error(
        served.signoff("audit", "verify", "--log", str(log), "--against", str(log)),
        "not JSON",
    )

    # a tail cut from the database with its checkpoints: only the kept checkpoints show it
    db = sqlite3.connect(served.folder / "server.db", isolation_level=None)
    for table in ("audit_events", "audit_chain", "audit_checkpoints"):
        db.execute(f"DROP TRIGGER {table}_no_delete")
    db.execute("DELETE FROM audit_events WHERE position > 8")
    db.execute("DELETE FROM audit_chain WHERE seq > 8")
    db.execute("DELETE FROM audit_checkpoints WHERE size > 8")
    db.execute("DELETE FROM requests WHERE seq = 3")
    db.close()
    one_line_error(
        served.signoff("audit", "verify", "--against", str(kept), token=admin), "cut off"
    )


def test_watch_at_the_prompt(served: Served) -> None:
    publisher = served.token("--sub", "paul", "--role", "publisher")
    env = {**served.env, "SIGNOFF_URL": served.url, "SIGNOFF_TOKEN": publisher, "TERM": "dumb"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "signoff", "watch"],
        cwd=str(served.folder),
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(60, 160),
    )
    log = (served.folder / "watch.log").open("w")
    child.logfile_read = log
    try:
        child.expect("Watching")
        first = served.agent(REFUND, call_id="w1")
        child.expect("Refund \\$250.0 for ORD-7")
        child.expect("Expires")
        child.expect(r"\[e\]dit")
        child.sendline("e")
        child.expect(r"amount \[250\.0\]")
        child.sendline("120")
        child.expect("Approve with these changes")
        child.sendline("y")
        child.expect("Approved")
        assert finish(first)["executed_args"] == [{"order_id": "ORD-7", "amount": 120.0}]

        second = served.agent({"order_id": "ORD-8", "amount": 300}, call_id="w2")
        child.expect("ORD-8")
        child.expect(r"\[e\]dit")
        child.sendline("n")
        child.expect("Reason")
        child.sendline("Duplicate refund")
        child.expect("Rejected")
        told = json.loads(finish(second)["to_model"])
        assert told["message"] == "Refund was not approved. Reason: Duplicate refund"
        child.sendcontrol("c")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
        log.close()
        print((served.folder / "watch.log").read_text())


def test_python_dash_m_signoff_is_the_same_command(served: Served) -> None:
    result = served.signoff("--help", check=True)
    for command in (
        "serve",
        "token",
        "pending",
        "show",
        "approve",
        "reject",
        "watch",
        "audit",
        "demo",
    ):
        assert command in result.stdout
    assert os.path.exists(Path(sys.executable).parent / "signoff")
