"""The command line answers bad input with one line on stderr and a non-zero exit: never a
traceback, never a secret."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.test_agent_data import cli


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("signoff: ")
    return lines[0]


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("x = [", "invalid TOML"),
        ('[server]\nmax_body_bytes = "big"\n', "server.max_body_bytes"),
        ('[auth]\nleeway_s = "x"\n', "auth.leeway_s"),
        ("[[tools]]\nname = 'a'\nmin_role = 'god'\n", "unknown role"),
        ("[[tools]]\nname = 'a'\nwhen = 'args.x >'\n", "invalid CEL"),
        ("[defaults]\ntimeout = 'whenever'\n", "invalid duration"),
        ("colour = 'blue'\n", "colour: unknown key"),
    ],
)
def test_a_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, toml: str, says: str) -> None:
    config = tmp_path / "policy.toml"
    config.write_text(toml)
    line = one_line_failure(cli("serve", "--config", str(config), "--port", "1", cwd=tmp_path))
    assert str(config) in line and says in line


def test_serve_with_the_database_down_never_prints_its_password(tmp_path: Path) -> None:
    line = one_line_failure(
        cli("serve", "--db", "postgresql://app:hunter2secret@127.0.0.1:1/db", cwd=tmp_path)
    )
    assert "hunter2secret" not in line and "app:***@" in line


@pytest.mark.parametrize(
    "args",
    [
        ("pending", "--url", "localhost:8000", "--token", "t"),
        ("pending", "--url", "ftp://x", "--token", "t"),
        ("pending", "--url", "http://127.0.0.1:1", "--token", "t"),
        ("approve", "apr_x", "--set", "=1", "--url", "http://127.0.0.1:1", "--token", "t"),
        ("show", "apr_x", "--url", "http://127.0.0.1:1"),
        ("runs", "resume", "nope", "--db", "sqlite:///nothing-here.db"),
        ("token", "--sub", "a", "--role", "emperor"),
        ("serve", "--log-format", "yaml", "--db", "sqlite:///x.db"),
    ],
)
def test_cli_failures_are_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    one_line_failure(cli(*args, cwd=tmp_path, env={"SIGNOFF_TOKEN": ""}))


@pytest.mark.parametrize("command", [("pending",), ("approve", "apr_x"), ("whoami",)])
def test_an_unreachable_server_is_named_with_the_systems_reason(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """The person reads why ("Connection refused"), not the HTTP client's internals (its
    connection key and proxy settings, which the error's repr printed)."""
    args = (*command, "--url", "http://127.0.0.1:1", "--token", "t")
    line = one_line_failure(cli(*args, cwd=tmp_path))
    assert (
        line == "signoff: cannot reach the signoff server at http://127.0.0.1:1: Connection refused"
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize(
    "command",
    [("serve",), ("demo",), ("mcp-proxy", "--transport", "http")],
    ids=["serve", "demo", "mcp-proxy"],
)
def test_a_port_in_use_is_one_line_and_nothing_claims_to_serve(
    tmp_path: Path, taken_port: int, command: tuple[str, ...]
) -> None:
    """Bound before anything starts: no "serving on" line, no log record from the HTTP
    server, no upstream started (the proxy's upstream here would fail loudly)."""
    upstream = ("--", sys.executable, "-c", "raise SystemExit('started')")
    args = (*command, "--port", str(taken_port), *(upstream if command[0] == "mcp-proxy" else ()))
    result = cli(*args, cwd=tmp_path)
    line = one_line_failure(result)
    assert line.startswith(f"signoff: cannot listen on 127.0.0.1:{taken_port}: ")
    assert "Address already in use" in line
    assert "serving" not in result.stdout and "Dashboard" not in result.stdout


@pytest.mark.parametrize("port", ["65536", "-1"])
def test_a_port_out_of_range_is_refused(tmp_path: Path, port: str) -> None:
    line = one_line_failure(cli("serve", "--port", port, cwd=tmp_path))
    assert "--port" in line


def test_an_address_this_machine_does_not_have_is_one_line(tmp_path: Path) -> None:
    # TEST-NET-1 (RFC 5737): an address, so no name is looked up, and never this machine's
    line = one_line_failure(cli("serve", "--host", "192.0.2.1", "--port", "0", cwd=tmp_path))
    assert line == "signoff: cannot listen on 192.0.2.1:0: Cannot assign requested address"
