"""Conversation privacy and membership from Slack (conversations.info / conversations.members), cached.

A DM (`D…`) is private and needs no call: only its two parties see it. Anything else is asked of
Slack: `is_private` from conversations.info, then members of a private conversation from
conversations.members (the bot can read them only where it is a member). Any failure, a missing
scope, or a member list too long to read counts as private with unknown members: fail closed.
"""

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from slackbot.channels import PRIVATE_UNKNOWN, ChannelInfo
from slackbot.slack.api import error_code

log = logging.getLogger(__name__)

FAILURE_CACHE_SECONDS = 30.0
MEMBER_PAGES = 5  # 1,000 members a page; a bigger private channel counts as members unknown
CACHE_LIMIT = 10_000  # conversations remembered; the cache starts afresh past this


class SlackChannelDirectory:
    def __init__(self, client: WebClient, ttl_seconds: float, monotonic: Callable[[], float] = time.monotonic):
        self._client = client
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, ChannelInfo, bool]] = {}
        self._lock = threading.Lock()

    def info(self, channel_id: str) -> ChannelInfo:
        if channel_id.startswith("D"):
            return ChannelInfo(private=True, members=frozenset())
        with self._lock:
            entry = self._cache.get(channel_id)
        if entry is not None:
            stored_at, info, failed = entry
            if self._monotonic() - stored_at <= (FAILURE_CACHE_SECONDS if failed else self._ttl):
                return info
        info, failed = self._fetch(channel_id)
        with self._lock:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[channel_id] = (self._monotonic(), info, failed)
        return info

    def _fetch(self, channel_id: str) -> tuple[ChannelInfo, bool]:
        try:
            channel = self._client.conversations_info(channel=channel_id).get("channel")
            if not isinstance(channel, dict):
                return PRIVATE_UNKNOWN, True
            if channel.get("is_private") is False and not channel.get("is_im") and not channel.get("is_mpim"):
                return ChannelInfo(private=False), False
            return ChannelInfo(private=True, members=self._members(channel_id)), False
        except SlackApiError as error:
            log.warning("conversations lookup of %s failed (%s): treated as private", channel_id, error_code(error))
        except (SlackClientError, OSError) as error:
            log.warning("conversations lookup of %s unreachable (%s): treated as private", channel_id,
                        type(error).__name__)  # fmt: skip
        return PRIVATE_UNKNOWN, True

    def _members(self, channel_id: str) -> frozenset[str] | None:
        members: set[str] = set()
        cursor = ""
        for _ in range(MEMBER_PAGES):
            response = self._client.conversations_members(channel=channel_id, limit=1000, cursor=cursor or None)
            members.update(m for m in response.get("members") or [] if isinstance(m, str))
            cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return frozenset(members)
        return None
