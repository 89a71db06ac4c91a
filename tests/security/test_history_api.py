"""The history endpoints refuse what is not an agent's own, and bad input is a clear 4xx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.server.conftest import Live, start_live, stop_live


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    info, server, task = await start_live(tmp_path)
    yield info
    await stop_live(server, task)


async def test_an_approver_or_nobody_reads_no_history(live: Live) -> None:
    async with live.client(live.approver_token("ada", "admin")) as ada:
        r = await ada.get("/v1/history", params={"lookback_s": 60})
        assert r.status_code == 403
        body = {"tool": "pay", "args": {}}
        assert (await ada.post("/v1/executions", json=body)).status_code == 403
    async with live.client(None) as anonymous:
        assert (await anonymous.get("/v1/history", params={"lookback_s": 60})).status_code == 401


@pytest.mark.parametrize("lookback", ["", "x", "nan", "inf", "-1", "0", "1e30"])
async def test_a_bad_window_is_refused(live: Live, lookback: str) -> None:
    async with live.client(live.agent_token()) as agent:
        r = await agent.get("/v1/history", params={"lookback_s": lookback})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "body",
    [
        {"tool": "pay", "args": [1]},
        {"tool": "", "args": {}},
        {"tool": "pay", "args": {}, "agent_id": "someone-else"},
        '{"tool": "pay", "args": {"x": "\\ud800"}}',  # a lone surrogate, as JSON sends it
        {"args": {}},
    ],
)
async def test_a_bad_record_is_refused_and_nothing_is_written(live: Live, body: object) -> None:
    async with live.client(live.agent_token("mallory")) as agent:
        if isinstance(body, str):
            headers = {"Content-Type": "application/json"}
            r = await agent.post("/v1/executions", content=body, headers=headers)
        else:
            r = await agent.post("/v1/executions", json=body)
        assert 400 <= r.status_code < 500 and r.status_code != 404, r.text
        seen = (await agent.get("/v1/history", params={"lookback_s": 3600})).json()
    assert seen["items"] == []


async def test_only_the_agent_itself_withdraws_its_own_reservation(live: Live) -> None:
    async with (
        live.client(live.agent_token("support")) as support,
        live.client(live.agent_token("mallory")) as mallory,
        live.client(live.approver_token("ada", "admin")) as ada,
    ):
        made = await support.post("/v1/executions", json={"tool": "pay", "args": {"n": 1}})
        assert made.status_code == 200, made.text
        execution_id = made.json()["id"]
        # another agent cannot learn of it, nor withdraw it: a 404 like an unknown id
        assert (await mallory.delete(f"/v1/executions/{execution_id}")).status_code == 404
        assert (await ada.delete(f"/v1/executions/{execution_id}")).status_code == 403
        assert (await support.delete("/v1/executions/ex_unknown")).status_code == 404
        seen = (await support.get("/v1/history", params={"lookback_s": 60})).json()["items"]
        assert [i["execution_id"] for i in seen] == [execution_id]
        gone = await support.delete(f"/v1/executions/{execution_id}")
        assert gone.status_code == 200 and gone.json() == {"id": execution_id}
        again = await support.delete(f"/v1/executions/{execution_id}")
        assert again.status_code == 404
        assert again.headers["content-type"].startswith("application/problem+json")
        assert (await support.get("/v1/history", params={"lookback_s": 60})).json()["items"] == []
