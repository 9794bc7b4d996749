"""The `envbot` command line as operators run it: serve, console, check, and start-up errors."""

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import BOT_TOKEN, SIGNING_SECRET, FakeArgo, http_request
from tests.execution_plane import ARGO_NAMESPACE
from tests.fakes.slack_api import FakeSlack
from tests.replicas import serve_environment


def envbot(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "slackbot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=60,
    )


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "envbot"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("envbot ")


def test_console_dry_run_prints_pasteable_argv_and_the_reply(tmp_path: Path) -> None:
    result = envbot("console", "--dry-run", "/env create checkout ttl=4h name=checkout-demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    submit = next(line for line in lines if line.startswith("$ argo submit"))
    argv = shlex.split(submit[2:])
    assert argv[:6] == ["argo", "submit", "--from", "workflowtemplate/env-create-template", "-n", ARGO_NAMESPACE]
    assert "env_name=checkout-demo" in argv and "service=checkout" in argv
    assert any(a.startswith("expires_at=") and a.endswith("Z") for a in argv)
    assert argv[-2:] == ["-o", "name"]
    assert any("requested environment `checkout-demo`" in line for line in lines)
    assert "Dry run: nothing was submitted" in result.stdout


def test_console_reads_stdin_and_a_later_destroy_finds_its_create(tmp_path: Path) -> None:
    script = "# a comment\n/env create checkout name=co-demo\ndestroy co-demo\n/env bogus\n"
    result = envbot("console", "--dry-run", stdin=script, cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # `bogus` was refused: scripts can tell
    assert "$ argo submit --from workflowtemplate/env-destroy-template" in result.stdout
    assert "requested destroy of environment `co-demo`" in result.stdout
    assert "I don't know the command `bogus`" in result.stdout
    listing = f"$ argo list -n {ARGO_NAMESPACE} -l app.kubernetes.io/managed-by=envbot,envbot.dev/env=co-demo"
    assert listing in result.stdout


def test_console_without_dry_run_runs_the_real_argo_path(tmp_path: Path, fake_argo: FakeArgo) -> None:
    result = envbot("console", "create checkout name=co-real", env={"ARGO_BIN": str(fake_argo.bin)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (workflow,) = fake_argo.workflows()
    assert workflow["metadata"]["name"] in result.stdout
    assert "[posted in #CCONSOLE]" in result.stdout


def test_missing_and_malformed_settings_stop_start_up_with_one_line(tmp_path: Path) -> None:
    result = envbot("serve", "--mode", "http", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "envbot: SLACK_BOT_TOKEN is not set; see .env.example"

    result = envbot("serve", "--mode", "http", env={"SLACK_BOT_TOKEN": BOT_TOKEN}, cwd=tmp_path)
    assert result.stderr.strip() == "envbot: SLACK_SIGNING_SECRET is not set; see .env.example"

    result = envbot("serve", "--mode", "socket", env={"SLACK_BOT_TOKEN": BOT_TOKEN}, cwd=tmp_path)
    assert result.stderr.strip() == "envbot: SLACK_APP_TOKEN is not set; see .env.example"

    result = envbot("console", "help", env={"ARGO_TIMEOUT": "soon"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("envbot: ARGO_TIMEOUT is invalid:")
    assert len(result.stderr.strip().splitlines()) == 1

    result = envbot("console", "help", env={"ARGO_NAMESPACE": "Not_A_Namespace"}, cwd=tmp_path)
    assert result.stderr.startswith("envbot: ARGO_NAMESPACE is invalid:")


def test_dotenv_file_is_read(tmp_path: Path, fake_argo: FakeArgo) -> None:
    (tmp_path / ".env").write_text(f"ARGO_BIN={fake_argo.bin}\nARGO_NAMESPACE=envbot-workflows\n")
    result = envbot("check", cwd=tmp_path)
    assert "argo cli: ok (v3.7.18, floor v3.6.0)" in result.stdout.splitlines()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_busy_port_is_one_clear_line(tmp_path: Path, fake_slack: FakeSlack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake_slack.api_url,
            "HOST": "127.0.0.1",
        }
        result = envbot("serve", "--mode", "http", "--port", str(port), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"envbot: cannot listen on 127.0.0.1:{port} (Address already in use); set PORT (or --port) or HOST"
    )


def test_serve_http_runs_until_sigterm(tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack) -> None:
    port = _free_port()
    env = serve_environment(fake_argo.bin, fake_slack)
    proc = subprocess.Popen(
        [sys.executable, "-m", "slackbot", "serve", "--mode", "http", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if http_request(f"http://127.0.0.1:{port}/healthz").status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "envbot serve never became healthy"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "envbot stopped" in err
    assert BOT_TOKEN not in out + err and SIGNING_SECRET not in out + err


def test_start_up_messages_name_the_setting_and_the_fix(tmp_path: Path) -> None:
    cases = [
        ("ARGO_TIMEOUT", "nan", "'nan' is not a number of seconds; use a plain number such as 30"),
        ("LOG_LEVEL", "chatty", "'chatty' is not a log level; use one of DEBUG, INFO, WARNING, ERROR"),
        ("HOST", "local host", "'local host' is not an IP address or host name to listen on (e.g. 0.0.0.0)"),
        ("ARGO_CONCURRENCY", "lots", "'lots' is not a number"),
    ]
    for name, value, problem in cases:
        result = envbot("console", "help", env={name: value}, cwd=tmp_path)
        assert result.returncode == 2, name
        assert result.stderr.strip() == f"envbot: {name} is invalid: {problem}"


def test_an_unreachable_slack_is_one_line_and_nothing_else(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api/"
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": api}
    result = envbot("serve", "--mode", "http", "--port", "0", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"envbot: Could not reach Slack at SLACK_API_URL={api} to check SLACK_BOT_TOKEN (URLError)."
    ]


def test_the_console_in_the_pod_lets_oncall_group_members_act(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    """Run where the bot runs (SLACK_BOT_TOKEN set), on-call membership comes from Slack, as in Slack."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("oncall_groups: [S0ONCALL]\n")
    fake_slack.groups["S0ONCALL"] = ["U0ONCALL"]
    env = {"ARGO_BIN": str(fake_argo.bin), "ENVBOT_POLICY": str(policy)}
    created = envbot("console", "--user", "U0OWNER", "create checkout name=co-oncall", env=env, cwd=tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    offline = envbot("console", "--user", "U0ONCALL", "destroy co-oncall", env=env, cwd=tmp_path)
    assert offline.returncode == 1 and "Only the owner @U0OWNER" in offline.stdout  # no token: no groups
    in_pod = env | {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": fake_slack.api_url}
    destroyed = envbot("console", "--user", "U0ONCALL", "destroy co-oncall", env=in_pod, cwd=tmp_path)
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert "requested destroy of environment `co-oncall`" in destroyed.stdout
    assert fake_slack.requests("/api/usergroups.users.list")[0].body["usergroup"] == "S0ONCALL"
