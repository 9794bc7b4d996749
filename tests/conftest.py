"""Fixtures that stand up the real bot against local stand-ins for argo and Slack."""

import itertools
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import freezegun
import pytest
from slack_sdk.signature import SignatureVerifier

from slackbot.settings import Settings
from slackbot.slack.runtime import Runtime
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode

ROOT = Path(__file__).resolve().parent.parent
SIGNING_SECRET = "test-signing-secret-5c1f0e9a"
BOT_TOKEN = "xoxb-test-bot-token-7d2a9b41"
APP_TOKEN = "xapp-1-A111-test-app-token-3e8c4f"
SECRETS = (SIGNING_SECRET, BOT_TOKEN, APP_TOKEN)

# waitress's idle-connection bookkeeping must run on real time: freezegun decides per call by looking a
# few frames up the stack, so its cleanup (under `threading`, real time) could otherwise compare against
# activity stamped with frozen time and close a live connection. The app it calls (waitress.task) stays
# frozen, so the bot's clock is still pinned.
freezegun.configure(extend_ignore_list=["waitress.channel", "waitress.server", "waitress.wasyncore"])


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer's SLACK_*/ARGO_*/ENVBOT_* variables leak into a test."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "ARGO_", "ENVBOT_")) or name in ("PORT", "LOG_LEVEL"):
            monkeypatch.delenv(name)


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
        "slack_response_url_prefix": fake_slack.response_prefix,
        "argo_bin": str(fake_argo.bin),
        "argo_timeout": 10,
        "host": "127.0.0.1",
        "shutdown_grace": 5,
        "shutdown_drain": 0,
        # Most tests read the create announcement from response_url; tests/test_threads.py turns the
        # default (one channel message per environment, docs/adr/0009) back on.
        "slack_threads": False,
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


_SEQUENCE = itertools.count(1)  # response_url keys unique across every bot a test starts


class HttpBot:
    """The real Runtime serving HTTP on a local port, driven like Slack drives it."""

    def __init__(self, runtime: Runtime, slack: FakeSlack) -> None:
        self.runtime = runtime
        self.slack = slack
        self.url = f"http://127.0.0.1:{runtime.port}"

    def command_form(self, text: str, user: str = "U111AAA", channel: str = "C111AAA") -> tuple[dict[str, str], str]:
        key = f"cmd{next(_SEQUENCE)}"
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

    def click(
        self, message: dict[str, Any], label: str, user: str = "U111AAA", channel: str = "C111AAA", ts: str = "1.0"
    ) -> tuple[SlackPost, str]:
        """Click the button labelled `label` on a message envbot posted, as Slack sends it."""
        key = f"click{next(_SEQUENCE)}"
        payload = block_actions(message, label, user, channel, ts, self.slack.response_url(key), key)
        return self.post(urlencode({"payload": json.dumps(payload)})), f"/response/{key}"


def button(message: dict[str, Any], label: str) -> dict[str, Any]:
    """The button element labelled `label` in a message's blocks."""
    for block in message.get("blocks") or []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element["text"]["text"] == label:
                return dict(element)
    raise AssertionError(f"no button {label!r} in {message.get('blocks')}")


def block_actions(
    message: dict[str, Any], label: str, user: str, channel: str, ts: str, response_url: str, key: str
) -> dict[str, Any]:
    """Slack's block_actions payload for a click on one of the message's buttons."""
    element = button(message, label)
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": "T111"},
        "api_app_id": "A111",
        "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"1337.43.{key}",
        "team": {"id": "T111", "domain": "example"},
        "channel": {"id": channel, "name": "dev"},
        "message": {"type": "message", "ts": ts, "text": message.get("text", ""), "blocks": message.get("blocks")},
        "response_url": response_url,
        "actions": [
            {
                "action_id": element["action_id"],
                "block_id": "b1",
                "text": element["text"],
                "value": element["value"],
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


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


@pytest.fixture
def socket_bot(fake_argo: FakeArgo, fake_slack: FakeSlack) -> Iterator[tuple[Runtime, FakeSocketMode]]:
    """The real Runtime in Socket Mode, connected to a local WebSocket stand-in."""
    server = FakeSocketMode()
    fake_slack.socket_url = server.url
    runtime = Runtime(make_settings(fake_argo, fake_slack, slack_app_token=APP_TOKEN), mode="socket", port=0)
    runtime.start()
    server.wait_connected()
    yield runtime, server
    runtime.stop()
    server.stop()


def keep_extend_records_three_days(fake_argo: FakeArgo, folder: Path) -> None:
    """Install templates in `fake_argo` whose failed extends are kept 3 days: shorter than environments
    may live, so the record-retention check must stop creates."""
    templates = folder / "templates"
    shutil.copytree(ROOT / "argo/workflowtemplates", templates)
    extend = templates / "env-extend-template.yaml"
    extend.write_text(re.sub(r"secondsAfterFailure: \d+", "secondsAfterFailure: 259200", extend.read_text()))
    fake_argo.configure(templates_dir=str(templates))


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie is dead for our purposes)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    """The Kubernetes API stand-in the real kubectl talks to."""
    server = FakeKubeApi().start()
    yield server
    server.stop()


def argv_params(argv: list[str]) -> dict[str, str]:
    """`-p k=v` pairs of an argo argv, as a dict."""
    return dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "-p")


def argv_labels(argv: list[str]) -> dict[str, str]:
    value = argv[argv.index("-l") + 1]
    return dict(term.split("=", 1) for term in value.split(","))


OPERATOR_WORDS = ("argo", "ARGO_", "workflow list", "namespace", "RBAC", "kubectl", "WorkflowTemplate")


def operator_detail(caplog: pytest.LogCaptureFixture, reply: dict[str, Any]) -> str:
    """A failure reply in the user's words quotes a reference; the operator's detail is the log line that
    carries the same reference. Returns that line (and checks the reply says none of it)."""
    text = reply["text"]
    match = re.search(r"reference `([0-9a-f]{8})`", text)
    assert match, text
    assert not [w for w in OPERATOR_WORDS if w in text], text
    found = [r.getMessage() for r in caplog.records if f"reference {match.group(1)}" in r.getMessage()]
    assert found, f"no log line for reference {match.group(1)}"
    return found[0]
