"""The dashboard's pages and the endpoints it reads: headers, escaping, static files,
``/v1/me``, ``/v1/stats`` and ``/v1/audit/export``."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from signoff.models import Run, Status
from signoff.server.dashboard import CSP, STATIC, TEMPLATES
from signoff.shadow import ShadowRecord
from tests.server.conftest import Live
from tests.server.test_api import REFUND, create, is_problem
from tests.server.test_session import HTML, link, sign_in

PAGES = ["/", "/history", "/stats", "/deliveries", "/requests/apr_whatever"]


@pytest.fixture
async def person(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        assert (await sign_in(client, link(live, "ada", "admin"))).status_code == 303
        yield client


def assert_hardened(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"


# -- pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
async def test_pages_send_people_without_a_session_to_sign_in(live: Live, path: str) -> None:
    async with httpx.AsyncClient(base_url=live.url) as anonymous:
        r = await anonymous.get(path, headers=HTML)
    assert r.status_code == 303 and r.headers["location"] == "/login"


@pytest.mark.parametrize("path", PAGES)
async def test_pages_are_served_with_a_strict_policy(person: httpx.AsyncClient, path: str) -> None:
    r = await person.get(path, headers=HTML)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert_hardened(r)
    assert '<script type="module" src="/static/js/main.js"></script>' in r.text
    assert re.search(r'<meta name="csrf-token" content="[\w-]{20,}">', r.text)


async def test_every_terminal_status_can_be_filtered_for(person: httpx.AsyncClient) -> None:
    """The queue's and the history's filters offer each status a request can end in."""
    for path in ("/", "/history"):
        page = (await person.get(path, headers=HTML)).text
        for status in Status:
            if status.terminal:
                assert f'<option value="{status.value}">' in page, (path, status)


async def test_sign_in_pages_and_errors_are_hardened_too(live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.url) as anonymous:
        for url in ("/login", link(live), "/login?token=nonsense"):
            r = await anonymous.get(url, headers=HTML)
            assert_hardened(r)
            assert "<script" not in r.text


async def test_the_sign_in_page_says_how_to_get_a_link(live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.url) as anonymous:
        r = await anonymous.get("/login", headers=HTML)
    assert "signoff login-link --sub" in r.text
    assert "/login/oidc" not in r.text  # no identity provider configured
    async with httpx.AsyncClient(base_url=live.url) as anonymous:
        r = await anonymous.get("/login/oidc", headers=HTML)
    assert r.status_code == 404 and "not configured" in r.text


async def test_what_people_name_themselves_is_escaped(live: Live) -> None:
    evil = '<img src=x onerror="alert(1)">'
    async with httpx.AsyncClient(base_url=live.url) as client:
        shown = await client.get(link(live, evil, "editor"), headers=HTML)
        assert evil not in shown.text
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in shown.text
        await sign_in(client, link(live, evil, "editor"))
        page = await client.get(f"/requests/{evil}", headers=HTML)
    assert page.status_code == 200
    assert evil not in page.text and 'data-request-id="&lt;img' in page.text


async def test_sign_in_and_out_take_only_their_methods(live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.url) as client:
        is_problem(await client.put("/login"), 405)
        is_problem(await client.get("/logout"), 405)
        is_problem(await client.get("/no-such-page"), 404)


async def test_an_oversized_sign_in_form_is_refused(live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.url) as client:
        is_problem(await client.post("/login", content=b"token=" + b"a" * 20_000), 413)
        is_problem(await client.post("/login", content=b"&".join([b"a=1"] * 30)), 422)
        page = await client.post("/login", content=b"x" * 20_000, headers=HTML)
    assert page.status_code == 413 and "too large" in page.text


# -- static files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/static/js/main.js", "javascript"),
        ("/static/js/queue.js", "javascript"),
        ("/static/app.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
    ],
)
async def test_static_files_are_served_with_their_type(live: Live, path: str, kind: str) -> None:
    async with httpx.AsyncClient(base_url=live.url) as client:
        r = await client.get(path)
    assert r.status_code == 200
    assert kind in r.headers["content-type"]
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_a_missing_static_file_is_a_404(live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.url) as client:
        assert (await client.get("/static/js/nope.js")).status_code == 404
        assert (await client.get("/static/../server/app.py")).status_code == 404


def test_no_inline_script_or_style_anywhere() -> None:
    """The policy forbids them; this keeps the source honest before a browser complains."""
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template
        assert "<style" not in text and " style=" not in text, template
        assert not re.search(r"\son[a-z]+=", text), template  # no onclick= handlers
    scripts = list((STATIC / "js").glob("*.js"))
    assert len(scripts) >= 8
    for script in scripts:
        text = script.read_text()
        for banned in ("eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML"):
            assert banned not in text, (script, banned)
        assert 'setAttribute("style"' not in text, script


# -- /v1/me ------------------------------------------------------------------------------------


async def test_me_describes_the_caller(live: Live, person: httpx.AsyncClient) -> None:
    mine = (await person.get("/v1/me")).json()
    assert mine["sub"] == "ada" and mine["role"] == "admin" and mine["auditor"] is True
    assert mine["roles"] == ["editor", "publisher", "admin"]
    async with live.client(live.agent_token("bot")) as agent:
        theirs = (await agent.get("/v1/me")).json()
    assert theirs["kind"] == "agent" and theirs["role"] is None and theirs["auditor"] is False
    async with live.client(None) as anonymous:
        is_problem(await anonymous.get("/v1/me"), 401)


# -- /v1/stats ---------------------------------------------------------------------------------


async def test_stats_count_decisions_per_tool_and_approver(live: Live) -> None:
    ids = [(await create(live, {**REFUND, "tool_call_id": f"t{n}"}))["id"] for n in range(3)]
    async with live.client(live.approver_token("paul", "publisher")) as paul:
        await paul.post(f"/v1/requests/{ids[0]}/decisions", json={"decision": "approve"})
        await paul.post(
            f"/v1/requests/{ids[1]}/decisions", json={"decision": "reject", "reason": "no"}
        )
        r = await paul.get("/v1/stats", params={"since": "1h"})
    assert r.status_code == 200, r.text
    stats = r.json()
    assert stats["requests"] == 3
    assert stats["overall"]["decisions"] == 2 and stats["overall"]["approval_rate"] == 0.5
    [tool] = stats["tools"]
    assert tool["tool"] == "issue_refund"
    assert (tool["requests"], tool["decisions"], tool["approved"], tool["rejected"]) == (3, 2, 1, 1)
    assert 0 <= tool["median_s"] <= tool["p90_s"] < 60
    [approver] = stats["approvers"]
    assert approver["approver"] == "paul" and approver["decisions"] == 2
    assert len(stats["days"]) == 1 and stats["days"][0]["decisions"] == 2


@pytest.mark.parametrize("since", ["yesterday", "400d", "2999-01-01T00:00:00Z", "2026-01-01"])
async def test_stats_refuse_a_period_they_cannot_read(live: Live, since: str) -> None:
    async with live.client(live.approver_token()) as client:
        r = await client.get("/v1/stats", params={"since": since})
    is_problem(r, 422)


async def test_stats_are_for_approvers(live: Live) -> None:
    async with live.client(live.agent_token()) as agent:
        is_problem(await agent.get("/v1/stats"), 403)


# -- /v1/audit/export ------------------------------------------------------------------------


async def test_the_audit_export_is_a_jsonl_download_for_auditors(
    live: Live, person: httpx.AsyncClient
) -> None:
    for n in range(3):
        await create(live, {**REFUND, "tool_call_id": f"e{n}"})
    await live.service.audit_log.seal()
    r = await person.get("/v1/audit/export")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert re.fullmatch(
        r'attachment; filename="signoff-audit-\d{8}-\d{6}\.jsonl"',
        r.headers["content-disposition"],
    )
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3]
    assert all(e["prev_hash"] and e["hash"] for e in lines)
    listed = (await person.get("/v1/audit")).json()["items"]
    assert lines == listed
    only = await person.get("/v1/audit/export", params={"request_id": lines[1]["request_id"]})
    assert len(only.text.splitlines()) == 1


async def test_the_audit_export_needs_the_highest_role(live: Live) -> None:
    async with live.client(live.approver_token("paul", "publisher")) as paul:
        is_problem(await paul.get("/v1/audit/export"), 403)
    async with live.client(live.agent_token()) as agent:
        is_problem(await agent.get("/v1/audit/export"), 403)


async def test_stats_show_shadow_mode_calls_per_tool_and_the_newest(live: Live) -> None:
    for n, verdict in enumerate(("ask", "ask", "deny", "run")):
        record = ShadowRecord(
            tool="issue_refund",
            verdict=verdict,
            args={"amount": n},
            run=Run(agent_id="bot"),
            at=live.service.now(),
            min_role=None if verdict == "run" else "publisher",
            reason=f"Refund {n}",
        )
        await live.service.store.append_audit(record.entry())
    async with live.client(live.approver_token("paul", "publisher")) as paul:
        r = await paul.get("/v1/stats", params={"since": "1h"})
    assert r.status_code == 200, r.text
    shadow = r.json()["shadow"]
    assert shadow["calls"] == 4
    assert shadow["tools"] == [{"tool": "issue_refund", "run": 1, "ask": 2, "deny": 1}]
    assert [c["verdict"] for c in shadow["recent"]] == ["run", "deny", "ask", "ask"]
    assert shadow["recent"][1]["min_role"] == "publisher"
