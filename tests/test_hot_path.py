"""What a command costs the bot beyond argo itself: kept-alive follow-ups, quiet logs (bench/ measures CPU)."""

import logging
from typing import Any

import pytest

from tests.conftest import FakeArgo, HttpBot
from tests.fakes.slack_api import FakeSlack


def test_follow_ups_reuse_one_kept_alive_connection(http_bot: HttpBot, fake_slack: FakeSlack) -> None:
    http_bot.runtime.verify_records()
    peers = []
    for text in ("list", "create checkout", "list all"):
        _, path = http_bot.command(text)
        http_bot.reply(path)
        peers.append(fake_slack.requests(path)[0].peer)
    assert len(set(peers)) == 1, peers  # one TCP connection for three follow-ups


def test_argv_is_logged_only_at_debug(http_bot: HttpBot, fake_argo: FakeArgo, caplog: pytest.LogCaptureFixture) -> None:
    http_bot.runtime.verify_records()
    with caplog.at_level(logging.INFO, logger="slackbot"):
        _, path = http_bot.command("create checkout name=quiet")
        assert "requested environment `quiet`" in http_bot.reply(path)["text"]
    assert fake_argo.submits() and not [r for r in caplog.records if "workflowtemplate/" in r.getMessage()]
    with caplog.at_level(logging.DEBUG, logger="slackbot"):
        _, path = http_bot.command("create checkout name=loud")
        http_bot.reply(path)
    assert [r for r in caplog.records if r.levelno == logging.DEBUG and "workflowtemplate/" in r.getMessage()]


def test_web_api_calls_reuse_one_kept_alive_connection(http_bot_factory: Any, fake_slack: FakeSlack) -> None:
    http_bot: HttpBot = http_bot_factory(slack_threads=True)  # each create posts and updates its channel message
    http_bot.runtime.verify_records()
    for name in ("first", "second"):
        _, path = http_bot.command(f"create checkout name={name}")
        assert f"`{name}`" in http_bot.reply(path)["text"]
    calls = [r for r in fake_slack.received if r.path.startswith("/api/chat.")]
    assert len(calls) >= 2 and len({r.peer for r in calls}) == 1, [(r.path, r.peer) for r in calls]


def test_the_web_api_client_formats_no_debug_line_unless_debug_is_asked_for() -> None:
    """slack-sdk builds its debug line (the whole request body) whenever its own logger's level allows it."""
    from slackbot.cli import LIBRARY_LOGGERS, _configure_logging

    names = [*LIBRARY_LOGGERS, "waitress", "waitress.queue", ""]
    saved = {name: logging.getLogger(name).level for name in names}
    sdk = logging.getLogger("slack_sdk.web.base_client")  # the logger WebClient checks
    try:
        _configure_logging("INFO", quiet=False)
        assert sdk.level > logging.DEBUG
        _configure_logging("DEBUG", quiet=False)
        assert sdk.isEnabledFor(logging.DEBUG)
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
