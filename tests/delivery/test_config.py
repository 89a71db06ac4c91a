"""Channels and routes in the policy file: errors name the file, the key and the problem
(never a secret's value); secrets may come from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from signoff.config import load_config, parse_config
from signoff.delivery import build_channels
from signoff.errors import ConfigError

SECRET = "whsec_" + "Q" * 32
HOOK = {"type": "webhook", "url": "http://127.0.0.1:9/h", "secret": SECRET}


def test_an_unknown_channel_in_a_route_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[channels.a]\ntype = "webhook"\n[[routes]]\nnotify = ["b"]\n')
    with pytest.raises(ConfigError, match=r"p\.toml: routes\.0\.notify: unknown channel 'b'"):
        load_config(path)


def test_an_unknown_channel_in_an_escalation_is_an_error() -> None:
    steps = [{"after": "5m", "notify": ["nope"]}]
    with pytest.raises(ConfigError, match=r"routes\.0\.escalate\.0\.notify"):
        parse_config({"channels": {"a": HOOK}, "routes": [{"notify": ["a"], "escalate": steps}]})


def test_a_bad_route_condition_names_the_route() -> None:
    with pytest.raises(ConfigError, match=r"routes\.0\.when: invalid CEL"):
        parse_config({"channels": {"a": HOOK}, "routes": [{"when": "risk ===", "notify": ["a"]}]})


def test_a_bad_setting_names_the_key_and_never_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[channels.hook]\ntype = "webhook"\nurl = "ftp://x"\nsecret = "whsec_bad!"\n')
    with pytest.raises(ConfigError) as caught:
        build_channels(load_config(path))
    assert "p.toml: channels.hook." in caught.value.message
    assert "whsec_bad!" not in caught.value.message
    path.write_text('[channels.hook]\ntype = "pigeon"\n')
    with pytest.raises(ConfigError, match=r"channels\.hook\.type: unknown channel type"):
        build_channels(load_config(path))


def test_secrets_come_from_the_environment() -> None:
    data = {
        "channels": {"ops-hook": {"type": "webhook", "url": "http://127.0.0.1:9/h"}, "ops": HOOK}
    }
    environ = {"SIGNOFF_CHANNEL_OPS_HOOK_SECRET": SECRET, "SIGNOFF_CHANNEL_OPS_TIMEOUT_S": "3"}
    config = parse_config(data, environ=environ)
    assert config.channels["ops-hook"].settings["secret"] == SECRET
    assert "secret" not in repr(config.channels["ops-hook"])
    channels = build_channels(config)
    assert channels["ops"].settings.timeout_s == 3.0
    assert SECRET not in repr(channels["ops-hook"].settings)


def test_a_tool_adds_its_own_channels() -> None:
    config = parse_config(
        {
            "channels": {"a": HOOK, "b": HOOK},
            "tools": [{"name": "issue_refund", "channels": ["b"]}],
            "routes": [{"when": "risk == 'critical'", "notify": ["a"]}],
        },
        environ={},
    )
    assert config.tools["issue_refund"].channels == ("b",)
