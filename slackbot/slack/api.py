"""The Slack Web API client envbot uses everywhere, and how its errors read."""

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


def web_client(settings: Settings, token: str | None = None) -> WebClient:
    """A client for SLACK_API_URL with a short timeout and a capped rate-limit retry."""
    client = WebClient(
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
