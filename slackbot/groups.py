"""The port for Slack user-group membership (on-call rotations)."""

from typing import Protocol

from slackbot.errors import EnvbotError


class GroupLookupError(EnvbotError):
    """Membership could not be read; callers fail closed."""


class GroupDirectory(Protocol):
    def members(self, group_id: str) -> frozenset[str]: ...


class NoGroups:
    """Used where no Slack workspace is connected (the console): nobody is in any group."""

    def members(self, group_id: str) -> frozenset[str]:
        return frozenset()
