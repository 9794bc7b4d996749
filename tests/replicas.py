"""`envbot serve` as separate processes (replicas) in front of one argo stand-in and one Slack stand-in.

Each replica is the real program started the way the Deployment starts it; what they share is only
what two pods would share: the execution plane (the fake argo's store) and Slack.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.conftest import BOT_TOKEN, SIGNING_SECRET, SlackPost, http_request
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.slack_api import FakeSlack


def serve_environment(argo_bin: Path | str, slack: FakeSlack, **settings: str) -> dict[str, str]:
    """The environment `envbot serve` runs with in tests and benchmarks: this process's own, plus Slack's
    credentials, the Slack stand-in's URLs, the argo to run and a loopback address. `settings` add or
    override variables by name (SLACK_THREADS="false", OPS_PORT=…)."""
    return {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "SLACK_RESPONSE_URL_PREFIX": slack.response_prefix,
        "ARGO_BIN": str(argo_bin),
        "HOST": "127.0.0.1",
        **settings,
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Replica:
    """One `envbot serve` process (HTTP, or Socket Mode with `mode="socket"`); `restart()` stops it
    (SIGTERM) and starts a fresh one. Probes are served on a local port in both modes."""

    def __init__(self, folder: Path, argo: FakeArgo, slack: FakeSlack, mode: str = "http", **env: str) -> None:
        self.mode = mode
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        # Answers are read from response_url, as in conftest.make_settings.
        self.env = serve_environment(argo.bin, slack, **({"SLACK_THREADS": "false"} | env))
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.start()

    def start(self) -> None:
        port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "slackbot", "serve", "--mode", self.mode, "--port", str(port)],
            env=self.env,
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # wait for the state "ready", polling the probe Kubernetes would poll
            try:
                if http_request(f"{self.url}/readyz").status == 200:
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "envbot serve never became ready"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()

    def restart(self) -> None:
        self.stop()
        assert self.proc is not None and self.proc.returncode == 0
        self.start()

    def post(self, body: str, headers: dict[str, str]) -> SlackPost:
        return http_request(f"{self.url}/slack/events", body.encode(), headers)


def signed(body: str, stamp: str | None = None) -> dict[str, str]:
    """The headers Slack sends with `body`: one signature, so every delivery of it is the same request."""
    stamp = stamp or str(int(time.time()))
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body),
    }


def command_body(slack: FakeSlack, text: str, key: str, user: str = "U111AAA", channel: str = "C111AAA") -> str:
    form = {
        "token": "deprecated-verification-token", "team_id": "T111", "team_domain": "example",
        "channel_id": channel, "channel_name": "dev", "user_id": user, "user_name": "someone", "command": "/env",
        "text": text, "api_app_id": "A111", "is_enterprise_install": "false",
        "response_url": slack.response_url(key), "trigger_id": f"1337.42.{key}",
    }  # fmt: skip
    return urlencode(form)
