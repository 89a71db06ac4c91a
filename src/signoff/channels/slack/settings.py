"""The Slack channel's table in the policy file (``[channels.NAME]``, ``type = "slack"``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from signoff.channels.base import ChannelSettings

#: a Slack user id: U… in a workspace, W… in an Enterprise Grid org
SlackUserId = Annotated[str, StringConstraints(pattern=r"^[UW][A-Z0-9]{2,40}$")]


class SlackUser(BaseModel):
    """Who a Slack user is in signoff: the ``sub`` decisions are recorded under and the
    role they are authorized with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sub: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=200)


class SlackSettings(ChannelSettings):
    """``channel``, ``token``, ``signing_secret`` and ``users`` are what a deployment sets;
    the rest have defaults."""

    #: where requests are posted: a channel id (C…) or name (#agent-approvals); the bot
    #: must be a member
    channel: str = Field(min_length=1, max_length=200)
    #: the bot token (xoxb-…): chat:write
    token: SecretStr
    #: the app's signing secret: every interaction is verified with it (v0, 5 minutes)
    signing_secret: SecretStr
    #: where the Web API is (a test points it at a local server)
    api_url: str = "https://slack.com/api/"
    #: Slack user id → who they are here; anyone else who clicks is refused
    users: dict[SlackUserId, SlackUser] = Field(default_factory=dict)
    #: when set, interactions from another workspace or app are refused
    team_id: str | None = None
    api_app_id: str | None = None
    #: tools whose arguments, reason and context never go to Slack (a reason or context is
    #: often written from the arguments): approvers review them in signoff's dashboard, and
    #: such requests get no Edit button, since the form would show the values
    hide_details: list[str] = Field(default_factory=list)
    #: seconds a Web API call may take before the delivery is retried
    timeout_s: float = Field(default=10.0, gt=0, le=120)
