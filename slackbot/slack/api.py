"""The Slack Web API client envbot uses everywhere, and how its errors read."""

import io
import urllib.error
import urllib.request
from email.message import Message
from typing import Any

import urllib3
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryState
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from slackbot.settings import Settings

RETRY_AFTER_CAP = 3  # seconds; a longer Retry-After fails the call rather than stall a command


class _CappedRateLimitRetry(RateLimitErrorRetryHandler):
    """Obeys Retry-After once, and only when it is short."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        values = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), ["1"])
        value = values[0] if values else "1"
        return value.isdigit() and int(value) <= RETRY_AFTER_CAP


class _KeptAliveClient(WebClient):
    """slack-sdk's WebClient, whose requests go over kept-alive connections (urllib3's pool) instead of
    a new connection per call. Only the transport step is replaced: answers come back as urllib's
    would (an HTTPError for 4xx/5xx), so slack-sdk's retries, rate limits and errors are its own.

    Calls to SLACK_API_URL (all of them, in practice) go straight to that host's connection pool: the
    pool manager's per-call URL parsing and pool lookup cost more than the request itself on the hot
    path (a create makes two calls). Anything else goes through the manager."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pool = urllib3.PoolManager(maxsize=4, retries=False, ssl_context=self.ssl)
        base = urllib3.util.parse_url(self.base_url)
        self._base_pool = self._pool.connection_from_url(self.base_url)  # one origin: never evicted
        self._base_path = base.path or "/"

    def _perform_urllib_http_request_internal(self, url: str, req: urllib.request.Request) -> dict[str, Any]:
        if self.proxy is not None or not url.lower().startswith(("http://", "https://")):
            return super()._perform_urllib_http_request_internal(url, req)
        body = req.data if isinstance(req.data, bytes) else None  # slack-sdk always encodes to bytes
        headers = dict(req.header_items())
        try:
            if url.startswith(self.base_url):
                path = self._base_path + url[len(self.base_url) :]
                answer = self._base_pool.urlopen(
                    "POST", path, body=body, headers=headers, timeout=self.timeout, redirect=False, retries=False
                )
            else:
                answer = self._pool.request(
                    "POST", url, body=body, headers=headers, timeout=self.timeout, redirect=False, retries=False
                )
        except urllib3.exceptions.ReadTimeoutError:
            raise TimeoutError("timed out") from None  # what urllib raises when the answer is late
        except urllib3.exceptions.HTTPError as error:  # refused, unreachable, broken: urlopen's URLError
            raise urllib.error.URLError(error) from None
        if answer.status >= 300:  # urllib would raise (or follow a redirect, which Slack's API never needs)
            message = Message()
            for name, value in answer.headers.items():
                message[name] = value
            raise urllib.error.HTTPError(url, answer.status, answer.reason or "", message, io.BytesIO(answer.data))
        # A success is JSON, which is UTF-8 (RFC 8259); slack-sdk reads its headers as a plain mapping.
        text = answer.data.decode("utf-8", errors="replace")
        return {"status": answer.status, "headers": dict(answer.headers.items()), "body": text}


def web_client(settings: Settings, token: str | None = None) -> WebClient:
    """A client for SLACK_API_URL with a short timeout and a capped rate-limit retry."""
    client = _KeptAliveClient(
        token=token if token is not None else settings.secret("slack_bot_token"),
        base_url=str(settings.slack_api_url),
        timeout=int(settings.slack_timeout),
    )
    client.retry_handlers.append(_CappedRateLimitRetry(max_retry_count=1))
    return client


def error_code(error: SlackApiError) -> str:
    """Slack's error code (`invalid_auth`, `ratelimited`, …) from a refused call."""
    response = error.response
    return str(response.get("error", "unknown_error")) if response else "unknown_error"
