"""The Slack part of `envbot check`: each token is tried against Slack, and its kind is named."""

from collections.abc import Callable, Iterator

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from slackbot.checks import Result, failed, ok, warning
from slackbot.policy import english_list
from slackbot.settings import Settings
from slackbot.slack.api import error_code, web_client

# What manifests/slack-app.yaml asks for (a test keeps the two equal).
# channels:read … mpim:read: who may see an environment from a private channel or DM (usecases/visibility.py)
# chat:write.public: the environment's channel message in public channels the bot was not invited to
# (docs/adr/0009); private channels still need `/invite @envbot`, and the reply says so.
REQUIRED_SCOPES = frozenset(
    {
        "commands", "chat:write", "chat:write.public", "usergroups:read", "channels:read", "groups:read",
        "im:read", "mpim:read",
    }
)  # fmt: skip
_KINDS = {"xoxb-": "a bot token", "xapp-": "an app-level token", "xoxp-": "a user token", "xoxe": "a refresh token"}


def slack_checks(settings: Settings) -> Iterator[Result]:
    mode = settings.default_mode
    yield ok("slack mode", f"{mode}; socket when SLACK_APP_TOKEN is set")
    yield from _bot_token(settings)
    if mode == "socket":
        yield from _app_token(settings)
    else:
        yield from _signing_secret(settings)


def _kind(token: str) -> str:
    return next((kind for prefix, kind in _KINDS.items() if token.startswith(prefix)), "not a Slack token")


def _bot_token(settings: Settings) -> Iterator[Result]:
    token = settings.secret("slack_bot_token")
    if not token:
        yield failed("slack bot token", "SLACK_BOT_TOKEN is not set; see .env.example")
        return
    if not token.startswith("xoxb-"):
        yield failed("slack bot token", f"SLACK_BOT_TOKEN holds {_kind(token)}; it needs the bot token (xoxb-…)")
        return
    response = _call("slack bot token", web_client(settings).auth_test, "Slack rejected SLACK_BOT_TOKEN", settings)
    if isinstance(response, Result):
        yield response
        return
    team = response.get("team") or response.get("team_id")
    yield ok("slack bot token", f"team {team}, bot user {response.get('user_id')}")
    granted = {s.strip() for s in _header(response.headers, "x-oauth-scopes").split(",") if s.strip()}
    missing = sorted(REQUIRED_SCOPES - granted)
    if not granted:
        yield warning("slack scopes", "Slack did not report the token's scopes; compare with manifests/slack-app.yaml")
    elif missing:
        yield failed(
            "slack scopes", f"missing {english_list(missing)}; reinstall the app from manifests/slack-app.yaml"
        )
    else:
        yield ok("slack scopes", ", ".join(sorted(granted & REQUIRED_SCOPES)))


def _app_token(settings: Settings) -> Iterator[Result]:
    token = settings.secret("slack_app_token")
    if not token.startswith("xapp-"):
        yield failed(
            "slack app token", f"SLACK_APP_TOKEN holds {_kind(token)}; Socket Mode needs an app-level token (xapp-…)"
        )
        return
    client = web_client(settings, token=token)
    refused = "Slack would not open a Socket Mode connection"
    response = _call("slack app token", lambda: client.apps_connections_open(app_token=token), refused, settings)
    if isinstance(response, Result):
        yield response
        return
    if not str(response.get("url") or "").startswith("wss://"):
        yield failed("slack app token", "Slack answered apps.connections.open without a WebSocket URL")
        return
    yield ok("slack app token", "Slack issued a Socket Mode connection URL; not connected, so no event is taken")


def _signing_secret(settings: Settings) -> Iterator[Result]:
    secret = settings.secret("slack_signing_secret")
    if not secret:
        yield failed("slack signing secret", "SLACK_SIGNING_SECRET is not set (HTTP mode); see .env.example")
    elif _kind(secret) != "not a Slack token":
        yield failed("slack signing secret", f"SLACK_SIGNING_SECRET holds {_kind(secret)}; copy the Signing Secret")
    else:
        yield ok("slack signing secret", "set; Slack's next request proves it, a wrong one answers 401")


def _call(what: str, call: Callable[[], SlackResponse], refused: str, settings: Settings) -> SlackResponse | Result:
    """The response, or the check's FAILED line naming Slack's error or why Slack couldn't be reached."""
    try:
        return call()
    except SlackApiError as error:
        return failed(what, f"{refused} ({error_code(error)})")
    except (SlackClientError, OSError) as error:
        return failed(what, f"could not reach Slack at {settings.slack_api_url} ({type(error).__name__})")


def _header(headers: dict[str, object], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return ""
