"""Follow-ups to a command's response_url: only Slack's own hooks URL, never following redirects.

Connections are kept alive and reused (urllib3's pool, one per host): a follow-up costs a request,
not a TCP and TLS handshake. Every allowed URL starts with the prefix, which names its host (a URL's
text, "https://hooks.slack.com/", always ends the host with a "/"), so follow-ups go straight to that
host's pool rather than through the pool manager's per-request lookup.
"""

import json
import logging

import urllib3

from slackbot import metrics
from slackbot.replies import Reply
from slackbot.slack.blocks import message

log = logging.getLogger(__name__)

POOL_SIZE = 8  # kept-alive connections per host; more concurrent follow-ups open (and close) extra ones


class Responder:
    """Posts replies to response_urls under `allowed_prefix` (https://hooks.slack.com/ by default)."""

    def __init__(self, allowed_prefix: str, timeout: float) -> None:
        self._prefix = allowed_prefix
        self._pool = urllib3.PoolManager(
            num_pools=4, maxsize=POOL_SIZE, retries=False, timeout=urllib3.Timeout(total=timeout)
        )
        self._hooks = self._pool.connection_from_url(allowed_prefix)  # the only host: never evicted

    def allowed(self, url: str | None) -> bool:
        return bool(url) and str(url).startswith(self._prefix)

    def deliver(self, url: str | None, reply: Reply, replace_original: bool = False) -> bool:
        if not self.allowed(url):
            metrics.DELIVERY_FAILURES.inc()
            log.warning("not posting a follow-up: response_url is not under %s", self._prefix)
            return False
        body = json.dumps(message(reply) | {"replace_original": replace_original or reply.replaces_ack}).encode()
        try:
            response = self._hooks.urlopen(
                "POST",
                urllib3.util.parse_url(str(url)).request_uri,  # what the manager would send: no fragment
                body=body,
                headers={"Content-Type": "application/json"},
                redirect=False,
                retries=False,  # with `redirect` given, urllib3 would otherwise build its default Retry(3)
            )
        except urllib3.exceptions.HTTPError as error:
            log.error("could not reach response_url: %s", type(error).__name__)
        else:
            if 200 <= response.status < 300:
                return True
            log.error("response_url answered %s; the follow-up was not shown", response.status)  # 3xx included
        metrics.DELIVERY_FAILURES.inc()
        return False

    def close(self) -> None:
        self._pool.clear()
