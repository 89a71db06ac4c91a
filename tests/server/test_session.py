"""Dashboard sessions over HTTP: login links, the session cookie, CSRF, sign-out, and the
``signoff login-link`` command."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest

from signoff.auth import LOGIN_LINK_AUDIENCE
from signoff.cli import main
from signoff.config import Config
from signoff.connect import connect
from signoff.errors import Unauthorized
from signoff.models import Principal
from signoff.server.app import create_app
from signoff.server.ratelimit import SIGN_IN_ATTEMPTS
from signoff.server.session import CSRF_HEADER, SESSION_COOKIE, login_link, own_tokens
from signoff.server.state import Tickets
from signoff.service import ApprovalService
from signoff.stores.memory import MemoryStore
from signoff.stores.sqlite import SqliteStore
from tests.server.conftest import SECRET, Live
from tests.server.test_api import REFUND, create, is_problem

HTML = {"Accept": "text/html"}


def link(live: Live, sub: str = "paul", role: str = "publisher") -> str:
    return login_link(SECRET, live.config, live.url, sub, role)


def token_of(url: str) -> str:
    return httpx.URL(url).params["token"]


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert found, page
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """What the browser does: open the link, press the button."""
    page = await client.get(url, headers=HTML)
    assert page.status_code == 200, page.text
    nonce = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert nonce
    return await client.post(
        "/login", data={"token": token_of(url), "csrf": nonce.group(1)}, headers=HTML
    )


@pytest.fixture
async def browser(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, like a browser, without a bearer token."""
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        yield client


# -- login links ---------------------------------------------------------------------------


async def test_opening_the_link_spends_nothing_and_the_button_signs_in(
    live: Live, browser: httpx.AsyncClient
) -> None:
    url = link(live)
    for _ in range(3):  # a mail scanner fetching the link (GET and HEAD) spends nothing
        assert (await browser.head(url)).status_code == 200
        shown = await browser.get(url, headers=HTML)
        assert shown.status_code == 200
        assert "<strong>paul</strong>" in shown.text and "Sign in" in shown.text
    answer = await sign_in(browser, url)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    me = await browser.get("/v1/me")
    assert me.status_code == 200
    assert me.json()["sub"] == "paul" and me.json()["role"] == "publisher"


async def test_the_session_cookie_is_httponly_strict_and_scoped_to_the_site(
    live: Live, browser: httpx.AsyncClient
) -> None:
    answer = await sign_in(browser, link(live))
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "path=/" in cookie.lower()
    assert "secure" not in attributes  # plain http on loopback: a Secure cookie would be lost


async def test_over_https_the_cookie_is_secure() -> None:
    service = ApprovalService(MemoryStore())
    await service.start()
    app = create_app(service, key=SECRET)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://dash.test") as c:
            url = login_link(SECRET, service.config, "https://dash.test", "paul", "publisher")
            answer = await sign_in(c, url)
            cookies = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
            session = next(v for v in cookies if v.startswith(SESSION_COOKIE))
            assert "; secure" in session.lower()
    finally:
        await service.aclose()


async def test_a_link_works_once(live: Live, browser: httpx.AsyncClient) -> None:
    url = link(live)
    assert (await sign_in(browser, url)).status_code == 303
    async with httpx.AsyncClient(base_url=live.url, cookies={"signoff_login": "x"}) as other:
        shown = await other.get(url, headers=HTML)
        assert shown.status_code == 401
        assert "used already" in shown.text
        again = await other.post("/login", data={"token": token_of(url), "csrf": "x"})
    body = is_problem(again, 401)  # a program gets a problem document, not a page
    assert "used already" in body["detail"]


@pytest.mark.parametrize("kind", ["expired", "access-token", "forged", "garbage"])
async def test_links_that_are_not_valid_login_links_are_refused(
    live: Live, browser: httpx.AsyncClient, kind: str
) -> None:
    now = int(time.time())
    if kind == "expired":
        claims: dict[str, object] = {"sub": "paul", "kind": "approver", "role": "publisher"}
        claims |= {"aud": LOGIN_LINK_AUDIENCE, "iat": now - 3600, "exp": now - 1800, "jti": "j"}
        token = jwt.encode(claims, SECRET, algorithm="HS256")
    elif kind == "access-token":  # an approver's API token is not a login link
        token = live.approver_token("paul", "admin")
    elif kind == "forged":
        forged: dict[str, object] = {"sub": "mallory", "kind": "approver", "role": "admin"}
        forged |= {"aud": LOGIN_LINK_AUDIENCE, "iat": now, "exp": now + 300, "jti": "j2"}
        token = jwt.encode(forged, b"another-key-that-is-long-enough-for-hs256!", "HS256")
    else:
        token = "not-a-token"
    shown = await browser.get("/login", params={"token": token}, headers=HTML)
    assert shown.status_code == 401
    assert "does not work" in shown.text
    assert "Traceback" not in shown.text
    browser.cookies.set("signoff_login", "n")
    forced = await browser.post("/login", data={"token": token, "csrf": "n"})
    is_problem(forced, 401)
    assert (await browser.get("/v1/me")).status_code == 401


async def test_the_sign_in_button_needs_the_nonce_its_own_page_set(
    live: Live, browser: httpx.AsyncClient
) -> None:
    """Login CSRF: another site's form must not sign this browser in as someone else."""
    url = link(live, "mallory", "admin")
    cross_site = await browser.post("/login", data={"token": token_of(url)}, headers=HTML)
    assert cross_site.status_code == 403
    assert "Sign-in refused" in cross_site.text
    browser.cookies.set("signoff_login", "b")
    wrong = await browser.post("/login", data={"token": token_of(url), "csrf": "a"})
    is_problem(wrong, 403)
    assert (await browser.get("/v1/me")).status_code == 401
    browser.cookies.clear()
    assert (await sign_in(browser, url)).status_code == 303  # and the link is still good


# -- the session -----------------------------------------------------------------------------


async def test_a_change_with_the_cookie_needs_the_csrf_token(
    live: Live, browser: httpx.AsyncClient
) -> None:
    await sign_in(browser, link(live))
    request = await create(live, REFUND)
    path = f"/v1/requests/{request['id']}/decisions"
    missing = await browser.post(path, json={"decision": "approve"})
    assert is_problem(missing, 403)["type"].endswith("/csrf")
    wrong = await browser.post(path, json={"decision": "approve"}, headers={CSRF_HEADER: "x"})
    is_problem(wrong, 403)
    batch = await browser.post(
        "/v1/decisions", json={"ids": [request["id"]], "decision": "approve"}
    )
    is_problem(batch, 403)
    assert (await browser.get(f"/v1/requests/{request['id']}")).json()["status"] == "pending"

    page = await browser.get("/", headers=HTML)
    right = await browser.post(
        path, json={"decision": "approve"}, headers={CSRF_HEADER: csrf_of(page.text)}
    )
    assert right.status_code == 200, right.text
    decision = right.json()["decisions"][0]
    assert decision["by"] == "paul" and decision["via"] == "dashboard"


async def test_reads_with_the_cookie_need_no_csrf_token(
    live: Live, browser: httpx.AsyncClient
) -> None:
    await sign_in(browser, link(live))
    await create(live, REFUND)
    listed = await browser.get("/v1/requests", params={"status": "pending"})
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1
    async with browser.stream("GET", "/v1/events", params={"last_event_id": 0}) as stream:
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                assert line == "event: request.created"
                break


async def test_the_session_token_is_not_a_bearer_token(
    live: Live, browser: httpx.AsyncClient
) -> None:
    await sign_in(browser, link(live))
    session = browser.cookies[SESSION_COOKIE]
    async with live.client(session) as as_bearer:
        r = await as_bearer.get("/v1/me")
    is_problem(r, 401)


async def test_a_tampered_cookie_is_no_session(live: Live, browser: httpx.AsyncClient) -> None:
    await sign_in(browser, link(live))
    session = browser.cookies[SESSION_COOKIE]
    browser.cookies.clear()
    browser.cookies.set(SESSION_COOKIE, session[:-4] + "AAAA")
    is_problem(await browser.get("/v1/me"), 401)
    page = await browser.get("/", headers=HTML)
    assert page.status_code == 303 and page.headers["location"] == "/login"


async def test_sign_in_returns_to_the_page_that_asked_for_it(
    live: Live, browser: httpx.AsyncClient
) -> None:
    asked = await browser.get("/device", params={"user_code": "BCDF-GHJK"}, headers=HTML)
    assert asked.status_code == 303 and asked.headers["location"] == "/login"
    signed = await sign_in(browser, link(live))
    assert signed.status_code == 303
    assert signed.headers["location"] == "/device?user_code=BCDF-GHJK"
    assert "signoff_next" not in browser.cookies  # remembered once
    page = await browser.get(signed.headers["location"], headers=HTML)
    assert page.status_code == 200 and 'value="BCDF-GHJK"' in page.text
    # without a page to return to, a sign-in goes to the queue
    browser.cookies.clear()
    assert (await sign_in(browser, link(live, "erin"))).headers["location"] == "/"


async def test_sign_out_ends_the_session(live: Live, browser: httpx.AsyncClient) -> None:
    await sign_in(browser, link(live))
    token = csrf_of((await browser.get("/", headers=HTML)).text)
    old = browser.cookies[SESSION_COOKIE]
    refused = await browser.post("/logout", data={"csrf": "wrong"}, headers=HTML)
    assert refused.status_code == 403
    assert (await browser.get("/v1/me")).status_code == 200
    out = await browser.post("/logout", data={"csrf": token}, headers=HTML)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert SESSION_COOKIE not in browser.cookies
    async with httpx.AsyncClient(base_url=live.url, cookies={SESSION_COOKIE: old}) as replay:
        is_problem(await replay.get("/v1/me"), 401)  # the old cookie is refused


async def test_failed_sign_ins_from_one_address_are_bounded(
    live: Live, browser: httpx.AsyncClient
) -> None:
    bad = {"token": "not-a-token", "csrf": "x"}
    browser.cookies.set("signoff_login", "x")
    for _ in range(SIGN_IN_ATTEMPTS):
        is_problem(await browser.post("/login", data=bad), 401)
    refused = await browser.post("/login", data=bad)
    body = is_problem(refused, 429)
    assert body["type"].endswith("/too_many_requests")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert body["retry_after"] == int(refused.headers["Retry-After"])
    # while refused, even a good link waits (the check comes before the token is read)
    page = await browser.get(link(live), headers=HTML)
    assert page.status_code == 429 and "try again in" in page.text
    assert page.headers["Retry-After"]


# -- several replicas on one database ------------------------------------------------------


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two servers sharing one SQLite file, as two replicas share a database."""
    shared = [connect(f"sqlite:///{tmp_path / 'shared.db'}") for _ in range(2)]
    services = [ApprovalService(b.store, b.bus) for b in shared]
    clients = []
    for service in services:
        await service.start()
        app = create_app(service, key=SECRET)
        transport = httpx.ASGITransport(app=app)
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://dash.test"))
    yield clients
    for client in clients:
        await client.aclose()
    for service in services:
        await service.aclose()


async def test_a_link_works_once_across_replicas(replicas: list[httpx.AsyncClient]) -> None:
    first, second = replicas
    url = login_link(SECRET, Config(), "http://dash.test", "paul", "publisher")
    page = await second.get(url, headers=HTML)  # the confirm page, served by the other one
    assert (await sign_in(first, url)).status_code == 303
    nonce = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert nonce
    again = await second.post("/login", data={"token": token_of(url), "csrf": nonce.group(1)})
    assert "used already" in is_problem(again, 401)["detail"]
    is_problem(await second.get("/v1/me"), 401)


async def test_signing_out_on_one_replica_ends_the_session_on_all(
    replicas: list[httpx.AsyncClient],
) -> None:
    first, second = replicas
    await sign_in(first, login_link(SECRET, Config(), "http://dash.test", "paul", "publisher"))
    cookie = first.cookies[SESSION_COOKIE]
    second.cookies.set(SESSION_COOKIE, cookie)
    assert (await second.get("/v1/me")).status_code == 200
    token = csrf_of((await first.get("/", headers=HTML)).text)
    out = await first.post("/logout", data={"csrf": token}, headers=HTML)
    assert out.status_code == 303
    is_problem(await second.get("/v1/me"), 401)


async def test_a_stream_ticket_works_once_across_replicas(tmp_path: Path) -> None:
    stores = [SqliteStore(tmp_path / "shared.db") for _ in range(2)]
    for store in stores:
        await store.start()
    try:
        first, second = (Tickets(*own_tokens(SECRET, Config()), store) for store in stores)
        ticket, _ = first.issue(Principal(sub="paul", kind="approver", role="publisher"))
        assert (await second.redeem(ticket)).sub == "paul"
        with pytest.raises(Unauthorized, match="used already"):
            await first.redeem(ticket)
    finally:
        for store in stores:
            await store.aclose()


# -- signoff login-link -------------------------------------------------------------------


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


async def test_the_command_prints_a_link_that_signs_in(
    live: Live,
    browser: httpx.AsyncClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGNOFF_SECRET", SECRET.decode())
    monkeypatch.setenv("SIGNOFF_URL", live.url)
    db = f"sqlite:///{tmp_path}/cli.db"
    code, out, _ = run_cli(["login-link", "--sub", "lee", "--role", "admin", "--db", db], capsys)
    assert code == 0
    url = out.strip()
    assert url.startswith(f"{live.url}/login?token=")
    assert (await sign_in(browser, url)).status_code == 303
    assert (await browser.get("/v1/me")).json() | {"server_time": None} == {
        "sub": "lee",
        "kind": "approver",
        "role": "admin",
        "roles": ["editor", "publisher", "admin"],
        "auditor": True,
        "name": None,
        "server_time": None,
    }
    claims = jwt.decode(token_of(url), options={"verify_signature": False})
    assert 0 < claims["exp"] - claims["iat"] <= 600  # short-lived


def test_the_command_uses_the_configured_public_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNOFF_SECRET", SECRET.decode())
    monkeypatch.delenv("SIGNOFF_URL", raising=False)
    config = tmp_path / "signoff.toml"
    config.write_text('[server]\npublic_url = "https://approvals.example.com/"\n')
    args = ["login-link", "--sub", "lee", "--role", "editor", "--config", str(config)]
    code, out, _ = run_cli(args, capsys)
    assert code == 0
    assert out.startswith("https://approvals.example.com/login?token=")
    code, out, _ = run_cli([*args, "--url", "http://10.0.0.5:8000"], capsys)
    assert out.startswith("http://10.0.0.5:8000/login?token=")


def test_the_command_refuses_an_unknown_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNOFF_SECRET", SECRET.decode())
    code, out, err = run_cli(["login-link", "--sub", "lee", "--role", "boss"], capsys)
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        "signoff: unknown role 'boss'; the roles are ['editor', 'publisher', 'admin']"
    ]
