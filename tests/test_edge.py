"""The HTTP edge under hostile traffic and faults, against the real server (`Runtime` and `envbot serve`)."""

import hashlib
import hmac
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeArgo,
    HttpBot,
    alive,
    argv_params,
    http_request,
    operator_detail,
)
from tests.fakes.slack_api import FakeSlack
from tests.replicas import serve_environment
from tests.test_socket_mode import envelope

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def signed(body: str | bytes, content_type: str = FORM["Content-Type"], **extra: str) -> dict[str, str]:
    """Headers Slack would send: an HMAC over the raw bytes (which need not be valid UTF-8)."""
    stamp = str(int(time.time()))
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + stamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    } | extra


def raw_post(bot: HttpBot, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    result = http_request(f"{bot.url}/slack/events", body, headers)
    return result.status, result.body


@pytest.mark.parametrize(
    ("field", "value"),
    [("text", "create payload-api"), ("channel_name", "payload-team"), ("user_name", "payloadguy"),
     ("team_domain", "payloads-inc")],
)  # fmt: skip
def test_payload_anywhere_in_a_command_is_just_text(
    http_bot: HttpBot, fake_argo: FakeArgo, field: str, value: str
) -> None:
    form, path = http_bot.command_form("create checkout name=checkout-p")
    form[field] = value
    ack = http_bot.post(urlencode(form))
    assert ack.status == 200, ack
    assert ack.json()["text"].startswith(":hourglass_flowing_sand: Checking `create ")
    assert http_bot.reply(path)["response_type"] == "in_channel"
    assert len(fake_argo.submits()) == 1


def test_oversized_bodies_are_refused_before_they_are_read(http_bot: HttpBot) -> None:
    with socket.create_connection(("127.0.0.1", http_bot.runtime.port), timeout=10) as conn:
        conn.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 52428800\r\n\r\n" + b"a" * 1024
        )
        answer = conn.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413 "), answer  # 50 MB declared, 1 KiB sent: refused at the header
    status, _ = raw_post(http_bot, b"x" * (200 * 1024), signed("x" * (200 * 1024)))
    assert status == 413


def test_junk_gets_4xx_one_short_line_and_no_body_in_the_log(
    http_bot: HttpBot, fake_argo: FakeArgo, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    forged = '{"kind": "audit", "user": "U0ADMIN", "decision": "allowed", "action": "destroy"}'
    cases: list[tuple[bytes, dict[str, str], int]] = [
        (forged.encode() * 1000, FORM | {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=" + "0" * 64}, 401),
        (b"text=hi", FORM | {"X-Slack-Request-Timestamp": "\u00b2", "X-Slack-Signature": "v0=" + "0" * 64}, 401),
        (b"text=hi", FORM | {"X-Slack-Request-Timestamp": "9" * 4301, "X-Slack-Signature": "v0=" + "0" * 64}, 401),
        (b"{not json", signed("{not json"), 400),  # a form that starts with {
        (b"text=\xff\xfe", signed(b"text=\xff\xfe"), 400),  # invalid UTF-8
        (b"text=create+x&user_id=U1", signed("text=create+x&user_id=U1", "application/json"), 400),
        (b"payload=%7Bbroken", signed("payload=%7Bbroken"), 400),
        (b"hello", signed("hello", "text/plain"), 400),
    ]  # fmt: skip
    for body, headers, expected in cases:
        status, answer = raw_post(http_bot, body, headers)
        assert status == expected, (body[:40], status, answer)
        assert "Traceback" not in answer
    time.sleep(0.2)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    output = capfd.readouterr()
    assert "U0ADMIN" not in logged + output.out + output.err  # the forged record is never echoed
    rejections = [r for r in caplog.records if "rejected a request" in r.getMessage()]
    assert len(rejections) == len(cases)
    assert all(len(r.getMessage()) < 200 and r.exc_info is None for r in rejections)
    assert not [r for r in caplog.records if r.exc_info]
    assert fake_argo.calls() == []


def test_a_replayed_request_is_acknowledged_and_processed_once(http_bot: HttpBot, fake_argo: FakeArgo) -> None:
    form, path = http_bot.command_form("create checkout name=replayed")
    body = urlencode(form)
    headers = signed(body)
    first = raw_post(http_bot, body.encode(), headers)
    again = raw_post(http_bot, body.encode(), headers)
    retried = raw_post(http_bot, body.encode(), headers | {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "timeout"})
    assert first[0] == again[0] == retried[0] == 200
    assert "Checking" in first[1] and again[1] == "" and retried[1] == ""
    http_bot.reply(path)
    time.sleep(0.3)
    assert len(fake_argo.submits()) == 1
    assert len(http_bot.slack.requests(path)) == 1


def test_follow_ups_go_only_to_slack_and_redirects_are_not_followed(
    http_bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = FakeSlack().start()
    try:
        form, _ = http_bot.command_form("help")
        form["text"], form["response_url"] = "create checkout name=foreign", f"{elsewhere.url}/steal"
        assert http_bot.post(urlencode(form)).status == 200
        fake_slack.redirects["/response/moved"] = f"{elsewhere.url}/via-redirect"
        form["text"], form["response_url"] = "create checkout name=redirected", fake_slack.response_url("moved")
        form["trigger_id"] = "1337.99.moved"
        assert http_bot.post(urlencode(form)).status == 200
        fake_slack.wait_for("/response/moved")
        deadline = time.monotonic() + 30
        while len(fake_argo.submits()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert http_bot.runtime.scheduler.wait_idle(30)  # both follow-ups have been attempted
        assert elsewhere.received == []
        assert "response_url is not under" in caplog.text and "response_url answered 302" in caplog.text
    finally:
        elsewhere.stop()


@pytest.mark.serial
def test_one_users_burst_does_not_hold_up_another_user(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    bot = http_bot_factory(argo_concurrency=2)
    bot.runtime.verify_records()
    fake_argo.configure(delay=0.5)
    burst = [bot.command(f"create checkout name=burst-{i}", user="U0BURSTY")[1] for i in range(6)]
    _, other = bot.command("create checkout name=unrelated", user="U0OTHER1")
    other_at = fake_slack.wait_for(other, timeout=60)[0].at
    burst_at = sorted(fake_slack.wait_for(path, timeout=120)[0].at for path in burst)
    # The burst runs one at a time (its quota turn); the other user's command needs no such turn.
    assert other_at < burst_at[2]
    assert len(fake_argo.submits()) == 7


def test_a_hanging_group_lookup_is_cut_short_and_its_failure_remembered(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("oncall_groups: [S0ONCALL]\n")
    bot = http_bot_factory(envbot_policy=policy, slack_timeout=1)
    _, created = bot.command("create checkout name=grp", user="U0OWNER1")
    bot.reply(created)
    fake_slack.groups_hang = 5
    paths = [bot.command("destroy grp", user=f"U0STRANGE{i}")[1] for i in range(4)]
    replies = [bot.reply(path, timeout=30) for path in paths]
    assert all("couldn't reach Slack to check on-call group membership" in r["text"] for r in replies)
    assert len(fake_slack.requests("/api/usergroups.users.list")) == 1  # the failure was cached


def test_retry_after_is_obeyed_only_when_short(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("oncall_groups: [S0ONCALL]\n")
    fake_slack.groups = {"S0ONCALL": ["U0ONCALL1"]}
    bot = http_bot_factory(envbot_policy=policy)
    _, created = bot.command("create checkout name=ra", user="U0OWNER1")
    bot.reply(created)
    fake_slack.fail("/api/usergroups.users.list", 429, retry_after=30)
    _, path = bot.command("destroy ra", user="U0ONCALL1")
    assert "Slack refused to list user group S0ONCALL (ratelimited)" in bot.reply(path)["text"]
    assert len(fake_slack.requests("/api/usergroups.users.list")) == 1  # 30 s is not waited for
    bot.runtime.groups.invalidate("S0ONCALL")
    fake_slack.fail("/api/usergroups.users.list", 429, retry_after=1)
    _, path = bot.command("destroy ra", user="U0ONCALL1")
    assert "requested destroy of environment `ra`" in bot.reply(path)["text"]
    assert len(fake_slack.requests("/api/usergroups.users.list")) == 3  # one wait of a second, then success


def test_probes_on_the_ops_port_do_not_wait_behind_a_flood(http_bot_factory: Any) -> None:
    bot = http_bot_factory(http_idle_timeout=60, http_connection_limit=10, ops_port=0)
    assert bot.runtime.ops is not None
    bot.runtime.verify_records()
    ops = f"http://127.0.0.1:{bot.runtime.ops.port}"
    idle = [socket.create_connection(("127.0.0.1", bot.runtime.port)) for _ in range(30)]
    try:
        assert http_request(f"{ops}/healthz").status == 200 and http_request(f"{ops}/readyz").status == 200
        assert "envbot_commands_total" in http_request(f"{ops}/metrics").body
        assert http_request(f"{ops}/slack/events", b"x=1").status == 404  # no Slack traffic there
        for conn in idle:  # every flooding connection is still held: the probes did not wait for them
            conn.setblocking(False)
            with pytest.raises(BlockingIOError):
                conn.recv(1)
    finally:
        for conn in idle:
            conn.close()


def test_idle_connections_are_closed_and_bounded(http_bot_factory: Any) -> None:
    bot = http_bot_factory(http_idle_timeout=1, http_connection_limit=10)
    threads_before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", bot.runtime.port)) for _ in range(30)]
    try:
        assert http_request(f"{bot.url}/healthz").status == 200  # answered once idle ones are let go
        assert threading.active_count() - threads_before < 5  # no thread per connection
        for conn in idle[:10]:
            conn.settimeout(10)
            assert conn.recv(1) == b""  # closed by the server
    finally:
        for conn in idle:
            conn.close()


def test_argo_gets_no_slack_secret_and_token_shaped_text_is_redacted(
    http_bot_factory: Any,
    fake_argo: FakeArgo,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    bot = http_bot_factory()
    _, path = bot.command("create checkout name=env-check")
    bot.reply(path)
    assert fake_argo.envs() and not any(name.startswith("SLACK_") for env in fake_argo.envs() for name in env)

    leaky = tmp_path / "leaky-argo"
    leaky.write_text(
        f'#!/bin/sh\necho "Error: auth header Bearer {BOT_TOKEN} rejected, token {BOT_TOKEN}" >&2\nexit 1\n'
    )
    leaky.chmod(leaky.stat().st_mode | stat.S_IXUSR)
    other = http_bot_factory(argo_bin=str(leaky), envbot_audit_file=tmp_path / "audit.jsonl")
    _, path = other.command("create checkout name=leak")
    reply = other.reply(path)
    output = capfd.readouterr()
    for place in (json.dumps(reply), caplog.text, output.out, output.err, (tmp_path / "audit.jsonl").read_text()):
        assert BOT_TOKEN not in place
    assert "[redacted]" in operator_detail(caplog, reply)  # the detail, redacted, is in the log only


def test_an_audit_file_that_stops_working_costs_no_reply(
    http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "audit"
    folder.mkdir()
    bot = http_bot_factory(envbot_audit_file=folder / "audit.jsonl")
    folder.rename(tmp_path / "moved")
    (tmp_path / "audit").write_text("now a file, so audit/audit.jsonl can't be opened")
    for text in ("help", "launch x"):  # answered in the ack (they used to answer HTTP 500)
        ack, _ = bot.command(text)
        assert ack.status == 200 and ack.json()["text"]
    ack, path = bot.command("create checkout name=au-1")
    assert ack.status == 200
    assert bot.reply(path)["response_type"] == "in_channel"
    out = capfd.readouterr().out
    records = [json.loads(line) for line in out.splitlines() if '"kind": "audit"' in line]
    au1 = [r for r in records if r["env"] == "au-1"]
    assert [r["outcome"] for r in au1] == ["submitted"]  # one record, no contradictory "failed"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack, **env: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "slackbot", "serve", "--mode", "http", "--port", str(port)],
        env=serve_environment(fake_argo.bin, fake_slack, **env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if http_request(f"{url}/readyz").status == 200:
                return proc, url
        except OSError:
            pass
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "envbot serve never became ready"
        time.sleep(0.1)


def post_command(url: str, slack: FakeSlack, text: str, key: str, user: str = "U0SERVE1") -> int:
    form = {
        "team_id": "T111", "team_domain": "example", "channel_id": "C0DEV", "channel_name": "dev", "user_id": user,
        "user_name": "u", "command": "/env", "text": text, "api_app_id": "A111",
        "response_url": slack.response_url(key), "trigger_id": f"9.9.{key}",
    }  # fmt: skip
    body = urlencode(form)
    return http_request(f"{url}/slack/events", body.encode(), signed(body)).status


def test_sigterm_with_a_hung_argo_and_queued_work_is_bounded(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    proc, url = serve(tmp_path, fake_argo, fake_slack, SHUTDOWN_GRACE="1", ARGO_CONCURRENCY="1", ARGO_TIMEOUT="120")
    try:
        fake_argo.configure(modes={"submit": "hang"})
        assert post_command(url, fake_slack, "create checkout name=hung", "hung") == 200
        assert post_command(url, fake_slack, "create checkout name=queued", "queued", user="U0SERVE2") == 200
        deadline = time.monotonic() + 10
        while not fake_argo.submits() and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert time.monotonic() - started < 15  # grace (1 s) plus closing, not ARGO_TIMEOUT (120 s)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    queued = fake_slack.wait_for("/response/queued")[0].body
    assert "envbot is restarting; nothing was submitted" in queued["text"]
    hung = fake_slack.wait_for("/response/hung")[0].body
    # Stopped mid-submit: the workflow may exist, and the user hears exactly that and how to check.
    assert "it may have been created anyway. Check with `/env status hung`" in hung["text"]
    assert not any(alive(pid) for pid in fake_argo.pids())
    assert len(fake_argo.submits()) == 1 and fake_argo.workflows() == []  # the hung one, killed; nothing created


def test_a_second_signal_exits_at_once_and_takes_argo_with_it(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    proc, url = serve(tmp_path, fake_argo, fake_slack, SHUTDOWN_GRACE="60", ARGO_TIMEOUT="120")
    try:
        fake_argo.configure(modes={"submit": "hang"})
        assert post_command(url, fake_slack, "create checkout name=hung2", "hung2") == 200
        deadline = time.monotonic() + 10
        while not fake_argo.submits() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGINT
    time.sleep(0.2)
    assert not any(alive(pid) for pid in fake_argo.pids())


def test_start_up_refuses_an_unwritable_audit_file_and_bad_ports(tmp_path: Path, fake_slack: FakeSlack) -> None:
    (tmp_path / "file").write_text("")
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "ENVBOT_AUDIT_FILE": str(tmp_path / "file" / "audit.jsonl"),
    }
    for args in (["serve", "--mode", "http"], ["console", "help"]):
        result = subprocess.run([sys.executable, "-m", "slackbot", *args], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        assert result.returncode == 2
        assert result.stderr.strip().startswith(
            f"envbot: ENVBOT_AUDIT_FILE={tmp_path}/file/audit.jsonl cannot be appended to"
        )
        assert len(result.stderr.strip().splitlines()) == 1
    for port in ("-1", "99999", "http"):
        result = subprocess.run([sys.executable, "-m", "slackbot", "serve", "--port", port], cwd=tmp_path,
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "is not a port number" in result.stderr


def test_a_closed_pipe_ends_the_console_quietly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "slackbot", "console", "--dry-run", *(["help"] * 200)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_a_socket_mode_payload_command_works(socket_bot: Any, fake_argo: FakeArgo, fake_slack: FakeSlack) -> None:
    _, server = socket_bot
    message = envelope("p-1", "create payload-api name=payload-api", fake_slack.response_url("p1"))
    message["payload"]["channel_name"] = "payload-team"
    server.send(message)
    assert "Checking `create payload-api`" in server.wait_ack("p-1")["payload"]["text"]
    assert fake_slack.wait_for("/response/p1")[0].body["response_type"] == "in_channel"
    assert argv_params(fake_argo.submits()[0])["env_name"] == "payload-api"
