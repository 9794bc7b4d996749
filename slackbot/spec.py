"""What the bot asks the execution plane for. Validated on construction, immutable afterwards."""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from slackbot.clock import rfc3339
from slackbot.commands import EnvName, ServiceName
from slackbot.names import ChannelId, UserId


def _whole_utc_seconds(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return value.astimezone(UTC).replace(microsecond=0)


class Actor(BaseModel):
    """Who typed the command, and where. Slack ids only, trusted after signature checks."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    user_id: UserId
    channel_id: ChannelId | None = None


class EnvironmentSpec(BaseModel):
    """An environment to create: one namespace, with an owner and an expiry."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    env_name: EnvName
    service: ServiceName
    expires_at: Annotated[datetime, AfterValidator(_whole_utc_seconds)]
    requested_by: UserId | None = None
    slack_channel: ChannelId | None = None

    @property
    def expires_at_text(self) -> str:
        return rfc3339(self.expires_at)


class DestroyRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    env_name: EnvName
    requested_by: UserId | None = None


Action = Literal["create", "destroy"]
