"""Follow-ups to a command's response_url: only Slack's own hooks URL, never following redirects."""

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from slackbot import metrics
from slackbot.replies import Reply
from slackbot.slack.blocks import message

log = logging.getLogger(__name__)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx becomes an HTTPError: the follow-up goes nowhere else


_OPENER = urllib.request.build_opener(_NoRedirects)


class Responder:
    """Posts replies to response_urls under `allowed_prefix` (https://hooks.slack.com/ by default)."""

    def __init__(self, allowed_prefix: str, timeout: float) -> None:
        self._prefix = allowed_prefix
        self._timeout = timeout

    def allowed(self, url: str | None) -> bool:
        return bool(url) and str(url).startswith(self._prefix)

    def deliver(self, url: str | None, reply: Reply, replace_original: bool = False) -> bool:
        if not self.allowed(url):
            metrics.DELIVERY_FAILURES.inc()
            log.warning("not posting a follow-up: response_url is not under %s", self._prefix)
            return False
        body = message(reply) | {"replace_original": replace_original}
        request = urllib.request.Request(  # noqa: S310 - only URLs under the configured https prefix get here
            str(url), data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with _OPENER.open(request, timeout=self._timeout) as response:
                response.read(1024)
                return True
        except urllib.error.HTTPError as error:
            log.error("response_url answered %s; the follow-up was not shown", error.code)
        except (urllib.error.URLError, OSError) as error:
            log.error("could not reach response_url: %s", type(error).__name__)
        metrics.DELIVERY_FAILURES.inc()
        return False
