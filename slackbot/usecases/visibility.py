"""Who may see which environment: Slack's own rule (docs/commands.md, "Who sees what").

An environment created in a public channel is visible to everyone, as the channel's messages are.
One created in a private channel, a group DM or a DM is visible only to its owner, to that
conversation's members where envbot can read them, and to admins and on-call. Anything envbot can't
tell (no channel recorded, Slack unreachable, a conversation the bot is not in) counts as private.
`list`, `status` and App Home all go through `Viewer`.
"""

from collections.abc import Iterable

from slackbot.channels import PRIVATE_UNKNOWN, ChannelInfo, ChannelLookupError
from slackbot.groups import GroupLookupError
from slackbot.history import Environment
from slackbot.usecases.common import Invocation, Services


class Viewer:
    """One person's view, for one request: channel lookups and the on-call check happen once each."""

    def __init__(self, services: Services, user_id: str) -> None:
        self._services = services
        self._user = user_id
        self._channels: dict[str, ChannelInfo] = {}
        self._privileged: bool | None = None

    def may_see(self, env: Environment) -> bool:
        if env.owner == self._user:
            return True
        info = self._channel(env.channel) if env.channel else PRIVATE_UNKNOWN
        if not info.private or (info.members is not None and self._user in info.members):
            return True
        return self._is_privileged()

    def visible(self, envs: Iterable[Environment]) -> list[Environment]:
        return [env for env in envs if self.may_see(env)]

    def _channel(self, channel_id: str) -> ChannelInfo:
        if channel_id not in self._channels:
            try:
                self._channels[channel_id] = self._services.channels.info(channel_id)
            except ChannelLookupError:
                self._channels[channel_id] = PRIVATE_UNKNOWN
        return self._channels[channel_id]

    def _is_privileged(self) -> bool:
        """Admins, and members of the on-call groups (a group that can't be read doesn't count)."""
        if self._privileged is None:
            policy = self._services.policy
            self._privileged = policy.is_privileged(self._user) or any(
                self._in_group(group) for group in policy.oncall_groups
            )
        return self._privileged

    def _in_group(self, group: str) -> bool:
        try:
            return self._user in self._services.groups.members(group)
        except GroupLookupError:
            return False


def require_visible(services: Services, invocation: Invocation, name: str, env: Environment | None) -> None:
    """Acting on an environment one may not see is answered as for a name that doesn't exist, so a refusal
    never shows a private environment's owner (only those who can see it may act on it anyway)."""
    if env is not None and not Viewer(services, invocation.actor.user_id).may_see(env):
        raise services.unknown(invocation.actor, name)
