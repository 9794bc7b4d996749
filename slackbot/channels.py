"""The port for what envbot may know about a Slack conversation: is it private, and who is in it."""

from dataclasses import dataclass
from typing import Protocol

from slackbot.errors import EnvbotError


class ChannelLookupError(EnvbotError):
    """The conversation could not be read; callers treat it as private with unknown members (fail closed)."""


@dataclass(frozen=True)
class ChannelInfo:
    private: bool
    members: frozenset[str] | None = None  # None: envbot can't tell who is in it


PRIVATE_UNKNOWN = ChannelInfo(private=True)


class ChannelDirectory(Protocol):
    def info(self, channel_id: str) -> ChannelInfo: ...


class NoChannels:
    """Where no Slack workspace is connected (the console): only the id's prefix can be read.

    `D` (a DM) and `G` (a group DM or an older private channel) are private; `C` channels are taken
    as public, as the console's operator reads Argo's history directly anyway."""

    def info(self, channel_id: str) -> ChannelInfo:
        return ChannelInfo(private=not channel_id.startswith("C"))
