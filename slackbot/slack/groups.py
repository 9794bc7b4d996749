"""On-call group membership from Slack's usergroups.users.list, cached so a burst costs one call.

A failed lookup is remembered briefly too: while Slack is down, each command fails closed at once
instead of every one waiting out its own timeout in turn.
"""

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from slackbot import metrics
from slackbot.groups import GroupLookupError
from slackbot.slack.api import error_code

log = logging.getLogger(__name__)

FAILURE_CACHE_SECONDS = 30.0


class SlackGroupDirectory:
    def __init__(self, client: WebClient, ttl_seconds: float, monotonic: Callable[[], float] = time.monotonic):
        self._client = client
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, frozenset[str] | GroupLookupError]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def members(self, group_id: str) -> frozenset[str]:
        cached = self._fresh(group_id)
        if cached is None:
            with self._lock_for(group_id):  # one fetch per group however many commands wait on it
                cached = self._fresh(group_id)
                if cached is None:
                    metrics.GROUP_LOOKUPS.labels("miss").inc()
                    cached = self._fetch(group_id)
                    self._cache[group_id] = (self._monotonic(), cached)
                    if isinstance(cached, GroupLookupError):
                        metrics.GROUP_LOOKUPS.labels("failure").inc()
                        raise cached
                    return cached
        if isinstance(cached, GroupLookupError):
            metrics.GROUP_LOOKUPS.labels("cached_failure").inc()
            raise cached
        metrics.GROUP_LOOKUPS.labels("hit").inc()
        return cached

    def invalidate(self, group_id: str) -> None:
        self._cache.pop(group_id, None)

    def _fresh(self, group_id: str) -> frozenset[str] | GroupLookupError | None:
        entry = self._cache.get(group_id)
        if entry is None:
            return None
        stored_at, value = entry
        ttl = FAILURE_CACHE_SECONDS if isinstance(value, GroupLookupError) else self._ttl
        return value if self._monotonic() - stored_at <= ttl else None

    def _lock_for(self, group_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(group_id, threading.Lock())  # one per configured group: bounded

    def _fetch(self, group_id: str) -> frozenset[str] | GroupLookupError:
        try:
            response = self._client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as error:
            code = error_code(error)
            log.warning("usergroups.users.list %s failed: %s", group_id, code)
            return GroupLookupError(f"Slack refused to list user group {group_id} ({code}).")
        except (SlackClientError, OSError) as error:
            log.warning("usergroups.users.list %s unreachable: %s", group_id, type(error).__name__)
            return GroupLookupError("I couldn't reach Slack to check on-call group membership.")
        return frozenset(response.get("users") or [])
