"""Issue 18: Socket Mode memory is bounded: big envelopes are read by length, too-big ones dropped."""

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import APP_TOKEN, BOT_TOKEN, FakeArgo
from tests.fakes.slack_api import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.test_edge import free_port
from tests.test_socket_mode import envelope

LIMIT_MIB = 120


def peak_rss_mib(pid: int) -> float:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmHWM"].split()[0]) / 1024


def test_megabyte_envelopes_keep_memory_bounded_and_too_big_ones_are_dropped(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    server = FakeSocketMode()
    fake_slack.socket_url = server.url
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": fake_slack.api_url,
        "SLACK_RESPONSE_URL_PREFIX": fake_slack.response_prefix,
        "ARGO_BIN": str(fake_argo.bin),
        "HOST": "127.0.0.1",
    }
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "slackbot", "serve", "--mode", "socket", "--port", str(free_port())],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        server.wait_connected(timeout=30)
        for n, size in enumerate((1_000_000, 4_000_000)):
            message = envelope(f"big-{n}", "help " + "x" * size, fake_slack.response_url(f"big{n}"))
            server.send(message)
            ack = server.wait_ack(f"big-{n}", timeout=60)
            assert ack["payload"]["response_type"] == "ephemeral"  # read, parsed and answered
            assert peak_rss_mib(proc.pid) < LIMIT_MIB
        server.send(envelope("huge", "help " + "x" * 9_000_000, fake_slack.response_url("huge")))
        deadline = time.monotonic() + 60
        while "dropped a Socket Mode message" not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.1)
        server.send(envelope("after", "help", fake_slack.response_url("after")))  # and it carries on
        assert "envbot" in server.wait_ack("after", timeout=30)["payload"]["text"]
        assert not [a for a in server.acks if a.get("envelope_id") == "huge"]
        assert peak_rss_mib(proc.pid) < LIMIT_MIB
    finally:
        proc.terminate()
        proc.wait(30)
        server.stop()
