"""The command line answers bad input with one line on stderr and a non-zero exit: never a
traceback, never a secret."""

from __future__ import annotations

import subprocess
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
