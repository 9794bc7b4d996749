"""On-call group membership from Slack's usergroups.users.list, cached so a burst costs one call."""

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from slackbot.groups import GroupLookupError

log = logging.getLogger(__name__)


class SlackGroupDirectory:
    def __init__(self, client: WebClient, ttl_seconds: float, monotonic: Callable[[], float] = time.monotonic):
        self._client = client
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def members(self, group_id: str) -> frozenset[str]:
        cached = self._fresh(group_id)
        if cached is not None:
            return cached
        with self._lock_for(group_id):  # one fetch per group however many commands wait on it
            cached = self._fresh(group_id)
            if cached is not None:
                return cached
            members = self._fetch(group_id)
            self._cache[group_id] = (self._monotonic(), members)
            return members

    def invalidate(self, group_id: str) -> None:
        self._cache.pop(group_id, None)

    def _fresh(self, group_id: str) -> frozenset[str] | None:
        entry = self._cache.get(group_id)
        if entry is None or self._monotonic() - entry[0] > self._ttl:
            return None
        return entry[1]

    def _lock_for(self, group_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(group_id, threading.Lock())

    def _fetch(self, group_id: str) -> frozenset[str]:
        try:
            response = self._client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as error:
            code = error.response.get("error", "unknown_error") if error.response else "unknown_error"
            log.warning("usergroups.users.list %s failed: %s", group_id, code)
            raise GroupLookupError(f"Slack refused to list user group {group_id} ({code}).") from None
        except (SlackClientError, OSError) as error:
            log.warning("usergroups.users.list %s unreachable: %s", group_id, type(error).__name__)
            raise GroupLookupError("I couldn't reach Slack to check on-call group membership.") from None
        return frozenset(response.get("users") or [])
