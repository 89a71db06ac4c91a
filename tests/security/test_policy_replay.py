"""``signoff policy replay`` given bad input: a bad candidate file, a period no date can hold,
a candidate whose conditions raise, a history with rows that do not parse. One line on
stderr and a non-zero exit, or a report that fails closed; never a traceback, never a write."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from signoff.models import PolicySpec, RequestSpec, Run
from signoff.service import ApprovalService
from signoff.stores.sqlite import SqliteStore
from tests.conftest import AGENT
from tests.security.test_agent_data import cli
from tests.security.test_cli_errors import one_line_failure


def history(db: Path, amounts: list[int]) -> str:
    async def build() -> None:
        service = ApprovalService(SqliteStore(db), sweep=False)
        await service.start()
        try:
            for amount in amounts:
                spec = RequestSpec(
                    tool="issue_refund",
                    args={"amount": amount},
                    run=Run(agent_id=AGENT.sub),
                    policy=PolicySpec(min_role="publisher"),
                )
                await service.submit(spec, AGENT)
        finally:
            await service.aclose()

    asyncio.run(build())
    return f"sqlite:///{db}"


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("x = [", "invalid TOML"),
        ("[[tools]]\nname = 'a'\nmode = 'dry-run'\n", "tools.0.mode"),
        ("[[tools]]\nname = 'a'\nwhen = 'args.x >'\n", "invalid CEL"),
        ("[[tools]]\nname = 'a'\nmin_role = 'god'\n", "unknown role"),
        ("[[tools]]\nname = 'a'\ncolour = 'blue'\n", "tools.0.colour: unknown key"),
    ],
)
def test_a_bad_candidate_is_one_line_naming_file_and_key(
    tmp_path: Path, toml: str, says: str
) -> None:
    db = history(tmp_path / "h.db", [50])
    config = tmp_path / "candidate.toml"
    config.write_text(toml)
    line = one_line_failure(cli("policy", "replay", "--config", str(config), "--db", db))
    assert str(config) in line and says in line


def test_a_missing_candidate_or_both_sources_is_one_line(tmp_path: Path) -> None:
    line = one_line_failure(cli("policy", "replay", "--config", str(tmp_path / "nope.toml")))
    assert "config file not found" in line
    config = tmp_path / "c.toml"
    config.write_text("")
    both = ["--db", "sqlite:///x.db", "--url", "http://127.0.0.1:1", "--token", "t"]
    line = one_line_failure(cli("policy", "replay", "--config", str(config), *both))
    assert "not both" in line


@pytest.mark.parametrize(
    "command",
    [("policy", "replay", "--config", "c.toml"), ("runs", "list"), ("runs", "resume", "r1")],
    ids=["policy replay", "runs list", "runs resume"],
)
def test_a_database_that_is_not_there_is_named_not_made(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """A command that only reads the store refuses a mistyped path: it used to create an
    empty database there and answer "0 past calls" / "No runs"."""
    (tmp_path / "c.toml").write_text("")
    line = one_line_failure(cli(*command, "--db", "sqlite:///typo.db", cwd=tmp_path))
    assert line == "signoff: no database at typo.db (check --db or SIGNOFF_DB)"
    assert not (tmp_path / "typo.db").exists()


@pytest.mark.parametrize("since", ["yesterday", "-1d", "0s", "7 days", "1e400d", "nan", "inf"])
def test_a_bad_since_is_one_line(tmp_path: Path, since: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text("")
    db = history(tmp_path / "h.db", [50])
    line = one_line_failure(
        cli("policy", "replay", "--config", str(config), "--db", db, "--since", since)
    )
    assert "duration" in line or "since" in line


@pytest.mark.parametrize("since", ["999999999999d", "9" * 5000])
def test_a_since_longer_than_any_date_replays_everything(tmp_path: Path, since: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[[tools]]\nname = 'issue_refund'\n")
    db = history(tmp_path / "h.db", [50, 60])
    out = cli("policy", "replay", "--config", str(config), "--db", db, "--since", since, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["total"] == 2


def test_a_candidate_whose_conditions_raise_fails_closed_as_ask(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    # both conditions raise for every stored call: no such argument, a string against a number
    config.write_text(
        "[[tools]]\nname = 'issue_refund'\nwhen = 'args.missing > 1'\n"
        "deny = 'args.amount > \"x\"'\n"
    )
    db = history(tmp_path / "h.db", [50, 5000])
    out = cli("policy", "replay", "--config", str(config), "--db", db, "--json")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    report = json.loads(out.stdout)
    assert report["tools"]["issue_refund"]["verdicts"] == {"ask": 2}
    assert report["changed"] == {}


def test_rows_that_do_not_parse_are_left_out_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    db = history(path, [50, 60])
    with sqlite3.connect(path) as conn:
        (table,) = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%body%' "
            "AND name LIKE '%request%'"
        ).fetchone()
        conn.execute(f"UPDATE {table} SET body = '{{not json' WHERE rowid = 1")
        before = conn.execute("SELECT count(*) FROM audit_events").fetchone()
    config = tmp_path / "c.toml"
    config.write_text("[[tools]]\nname = 'issue_refund'\nwhen = false\n")
    out = cli("policy", "replay", "--config", str(config), "--db", db, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["total"] == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone() == before


async def test_replay_through_a_server_needs_a_reader_and_matches_the_store(
    tmp_path: Path,
) -> None:
    from signoff.config import parse_config
    from signoff.shadow import ShadowRecord
    from tests.server.conftest import start_live, stop_live

    live, server, task = await start_live(tmp_path, parse_config({}))
    try:
        for n in range(3):
            spec = RequestSpec(tool="issue_refund", args={"amount": 50 * (n + 1)})
            await live.service.submit(spec, AGENT)
        shadow = ShadowRecord(
            "issue_refund", "run", {"amount": 900}, Run(agent_id="bot"), live.service.now()
        )
        await live.service.store.append_audit(shadow.entry())
        config = tmp_path / "c.toml"
        config.write_text("[[tools]]\nname = 'issue_refund'\nwhen = 'args.amount > 100'\n")
        base = ["policy", "replay", "--config", str(config), "--url", live.url, "--json"]
        admin = live.approver_token("ada", "admin")
        out = await asyncio.to_thread(cli, *base, "--token", admin)
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["total"] == 4
        # 50 and 100 would run; 150 and the shadow call's 900 would ask
        assert report["tools"]["issue_refund"]["verdicts"] == {"run": 2, "ask": 2}
        assert report["changed"] == {"run": 2, "ask": 1}
        agent = await asyncio.to_thread(cli, *base, "--token", live.agent_token("bot"))
        assert "Traceback" not in agent.stderr
        one_line_failure(agent)
    finally:
        await stop_live(server, task)


# -- over HTTP (POST /v1/policy/replay) -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"config": "x = ["}, "invalid TOML"),
        ({"config": "[[tools]]\nname = 'a'\nmin_role = 'god'\n"}, "unknown role"),
        ({"config": "[[tools]]\nname = 'a'\nwhen = 'args.x >'\n"}, "invalid CEL"),
        ({"config": "[[tools]]\nname = 'a'\ncolour = 'blue'\n"}, "tools.0.colour"),
        ({"config": "[[tools]]\nname = 'a'\n", "since": "yesterday"}, "since"),
        ({"config": "[[tools]]\nname = 'a'\n", "since": "-1d"}, "since"),
        ({"config": ""}, "config"),
        ({"config": "a = 1", "extra": True}, "extra"),
        ({"since": "7d"}, "config"),
        ({"config": "a = '" + "x" * 300_000 + "'"}, "config"),
        ({"config": "a = " + "[" * 2000 + "]" * 2000}, "config"),
    ],
)
async def test_a_bad_replay_over_http_is_a_clear_problem(
    tmp_path: Path, body: dict[str, object], says: str
) -> None:
    from tests.server.conftest import start_live, stop_live

    live, server, task = await start_live(tmp_path)
    try:
        async with live.client(live.approver_token("ada", "admin")) as ada:
            response = await ada.post("/v1/policy/replay", json=body)
        assert response.status_code in (413, 422), response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        if response.status_code == 422:
            assert says in response.json()["detail"], response.json()
    finally:
        await stop_live(server, task)


async def test_a_candidate_over_http_imports_no_code_and_reaches_no_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the candidate's policies are read: an app to import, channels to connect to, an
    identity provider to ask — none of them is touched by a replay."""
    from tests.server.conftest import start_live, stop_live

    marker = tmp_path / "imported"
    (tmp_path / "evil_replay_app.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # importable, were anything to import it
    candidate = (
        "[runs]\napps = ['evil_replay_app:app']\n\n"
        "[channels.hook]\ntype = 'webhook'\nurl = 'http://127.0.0.1:9/x'\n\n"
        "[[tools]]\nname = 'issue_refund'\nwhen = 'args.amount > 100'\n"
    )
    live, server, task = await start_live(tmp_path)
    try:
        spec = RequestSpec(tool="issue_refund", args={"amount": 500})
        await live.service.submit(spec, AGENT)
        async with live.client(live.approver_token("ada", "admin")) as ada:
            response = await ada.post("/v1/policy/replay", json={"config": candidate})
        assert response.status_code == 200, response.text
        assert response.json()["tools"]["issue_refund"]["verdicts"] == {"ask": 1}
    finally:
        await stop_live(server, task)
    assert not marker.exists()
