"""Fixtures that stand up the real bot against local stand-ins for argo and Slack."""

import json
import os
import stat
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from slackbot.settings import Settings
from slackbot.slack.runtime import Runtime
from tests.fakes.slack_api import FakeSlack

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SIGNING_SECRET = "test-signing-secret-5c1f0e9a"
BOT_TOKEN = "xoxb-test-bot-token-7d2a9b41"
APP_TOKEN = "xapp-1-A111-test-app-token-3e8c4f"
SECRETS = (SIGNING_SECRET, BOT_TOKEN, APP_TOKEN)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer's SLACK_*/ARGO_*/ENVBOT_* variables leak into a test."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "ARGO_", "ENVBOT_")) or name in ("PORT", "LOG_LEVEL"):
            monkeypatch.delenv(name)


class FakeArgo:
    """Handle on the fake `argo` executable: configure it, read what it was asked."""

    def __init__(self, folder: Path) -> None:
        self.state = folder / "argo-state"
        self.state.mkdir()
        self.bin = folder / "bin" / "argo"
        self.bin.parent.mkdir()
        fake = ROOT / "tests" / "fakes" / "fake_argo.py"
        self.bin.write_text(f'#!/bin/sh\nFAKE_ARGO_STATE="{self.state}" exec "{sys.executable}" "{fake}" "$@"\n')
        self.bin.chmod(self.bin.stat().st_mode | stat.S_IXUSR)
        self.configure()

    def configure(self, **options: Any) -> None:
        config = {"templates_dir": str(ROOT / "argo" / "workflowtemplates"), "namespace": "argo", "mode": "normal"}
        (self.state / "config.json").write_text(json.dumps(config | options))

    def calls(self) -> list[list[str]]:
        path = self.state / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line)["argv"] for line in path.read_text().splitlines()]

    def pids(self) -> list[int]:
        path = self.state / "calls.jsonl"
        return [json.loads(line)["pid"] for line in path.read_text().splitlines()] if path.exists() else []

    def submits(self) -> list[list[str]]:
        return [argv for argv in self.calls() if argv and argv[0] == "submit"]

    def workflows(self) -> list[dict[str, Any]]:
        folder = self.state / "workflows"
        return [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.exists() else []


@pytest.fixture
def fake_argo(tmp_path: Path) -> FakeArgo:
    return FakeArgo(tmp_path)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    slack = FakeSlack().start()
    yield slack
    slack.stop()


def make_settings(fake_argo: FakeArgo, fake_slack: FakeSlack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake_slack.api_url,
        "argo_bin": str(fake_argo.bin),
        "argo_timeout": 10,
        "host": "127.0.0.1",
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@dataclass
class SlackPost:
    status: int
    body: str
    content_type: str
    elapsed: float

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class HttpBot:
    """The real Runtime serving HTTP on a local port, driven like Slack drives it."""

    def __init__(self, runtime: Runtime, slack: FakeSlack) -> None:
        self.runtime = runtime
        self.slack = slack
        self.url = f"http://127.0.0.1:{runtime.port}"
        self._sequence = 0

    def command_form(self, text: str, user: str = "U111AAA", channel: str = "C111AAA") -> tuple[dict[str, str], str]:
        self._sequence += 1
        key = f"cmd{self._sequence}"
        form = {
            "token": "deprecated-verification-token",
            "team_id": "T111",
            "team_domain": "example",
            "channel_id": channel,
            "channel_name": "dev",
            "user_id": user,
            "user_name": "someone",
            "command": "/env",
            "text": text,
            "api_app_id": "A111",
            "is_enterprise_install": "false",
            "response_url": self.slack.response_url(key),
            "trigger_id": f"1337.42.{key}",
        }
        return form, f"/response/{key}"

    def command(self, text: str, user: str = "U111AAA", channel: str = "C111AAA") -> tuple[SlackPost, str]:
        form, response_path = self.command_form(text, user, channel)
        return self.post(urlencode(form)), response_path

    def post(
        self,
        body: str,
        timestamp: str | None = None,
        signature: str | None = None,
        secret: str = SIGNING_SECRET,
        headers: dict[str, str] | None = None,
    ) -> SlackPost:
        stamp = timestamp or str(int(time.time()))
        sign = signature or SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
        sent = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign,
        }
        if headers is not None:
            sent = headers
        return http_request(f"{self.url}/slack/events", body.encode(), sent)

    def reply(self, response_path: str, timeout: float = 15) -> dict[str, Any]:
        return self.slack.wait_for(response_path, 1, timeout)[0].body


def http_request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> SlackPost:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read().decode()
            return SlackPost(
                response.status, body, response.headers.get("Content-Type", ""), time.monotonic() - started
            )
    except urllib.error.HTTPError as error:
        return SlackPost(
            error.code, error.read().decode(), error.headers.get("Content-Type", ""), time.monotonic() - started
        )


@pytest.fixture
def http_bot_factory(fake_argo: FakeArgo, fake_slack: FakeSlack) -> Iterator[Any]:
    started: list[Runtime] = []

    def start(**overrides: Any) -> HttpBot:
        runtime = Runtime(make_settings(fake_argo, fake_slack, **overrides), mode="http", port=0)
        runtime.start()
        started.append(runtime)
        return HttpBot(runtime, fake_slack)

    yield start
    for runtime in started:
        runtime.stop()


@pytest.fixture
def http_bot(http_bot_factory: Any) -> HttpBot:
    return http_bot_factory()


def argv_params(argv: list[str]) -> dict[str, str]:
    """`-p k=v` pairs of an argo argv, as a dict."""
    return dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "-p")


def argv_labels(argv: list[str]) -> dict[str, str]:
    value = argv[argv.index("-l") + 1]
    return dict(term.split("=", 1) for term in value.split(","))
