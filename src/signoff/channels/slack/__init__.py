"""Slack: approval requests as Block Kit messages with Approve, Reject (a reason) and Edit
(the editable arguments), decided by the Slack users the config maps to approvers.

Needs the ``slack`` extra (slack-sdk). See docs/channels.md for the app's set-up.
"""

from __future__ import annotations

try:
    import slack_sdk  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is installed in the test env
    from signoff.errors import MissingDependency

    raise MissingDependency("slack-sdk", "slack") from exc

from signoff.channels.slack.channel import SlackChannel
from signoff.channels.slack.settings import SlackSettings, SlackUser

__all__ = ["SlackChannel", "SlackSettings", "SlackUser"]
