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


SHADOW = {"tool": "pay", "verdict": "ask", "args": {"amount": 5}}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({**SHADOW, "verdict": "approve"}, 422),
        ({**SHADOW, "args": [1]}, 422),
        ({**SHADOW, "agent_id": "mallory"}, 422),  # the agent is the token's, never a field
        ({**SHADOW, "quorum": 0}, 422),
        ({**SHADOW, "reason": "x" * 10_001}, 422),
        ({**SHADOW, "tool": ""}, 422),
        ({k: v for k, v in SHADOW.items() if k != "verdict"}, 422),
    ],
)
async def test_a_bad_shadow_verdict_is_refused_and_nothing_is_written(
    live: Live, body: dict[str, object], status: int
) -> None:
    from signoff.shadow import shadow_records

    async with live.client(live.agent_token("support")) as support:
        r = await support.post("/v1/shadow-verdicts", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [x async for x in shadow_records(live.service.store)] == []


async def test_only_an_agent_records_shadow_verdicts_and_as_itself(live: Live) -> None:
    from signoff.shadow import shadow_records

    async with (
        live.client(live.approver_token("ada", "admin")) as ada,
        live.client(None) as nobody,
        live.client(live.agent_token("support")) as support,
    ):
        assert (await ada.post("/v1/shadow-verdicts", json=SHADOW)).status_code == 403
        assert (await nobody.post("/v1/shadow-verdicts", json=SHADOW)).status_code == 401
        nan = b'{"tool": "pay", "verdict": "run", "args": {"amount": NaN}}'
        bad = await support.post(
            "/v1/shadow-verdicts", content=nan, headers={"content-type": "application/json"}
        )
        assert bad.status_code in (400, 422)
        made = await support.post("/v1/shadow-verdicts", json=SHADOW)
        assert made.status_code == 201, made.text
        assert made.json()["agent_id"] == "support"
    [record] = [x async for x in shadow_records(live.service.store)]
    assert record.run.agent_id == "support" and record.verdict == "ask"
