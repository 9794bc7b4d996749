"""Running argo: minimal environment, bounded output and time, no orphans. Real processes, real signals."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from slackbot.argo_cli import ArgoCliOrchestrator, ProcessRunner
from slackbot.argo_cli.process import CHILDREN, SETPRIV, argo_environment
from slackbot.errors import OrchestratorError
from slackbot.orchestrator import Scope
from tests.conftest import alive


def script(folder: Path, body: str, name: str = "argo") -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_argo_gets_what_it_needs_and_never_the_slack_secrets(tmp_path: Path) -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/envbot",
        "KUBECONFIG": "/k",
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "ARGO_SERVER": "argo:2746",
        "ARGO_TOKEN": "Bearer abc",
        "HTTPS_PROXY": "http://proxy:3128",
        "no_proxy": ".svc",
        "SLACK_BOT_TOKEN": "xoxb-secret",
        "SLACK_SIGNING_SECRET": "s3cret",
        "SLACK_APP_TOKEN": "xapp-secret",
        "ARGO_TIMEOUT": "30",
        "ARGO_BIN": "argo",
        "AWS_SECRET_ACCESS_KEY": "no",
    }
    env = argo_environment(environ)
    assert set(env) == {
        "PATH", "HOME", "KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "ARGO_SERVER",
        "ARGO_TOKEN", "HTTPS_PROXY", "no_proxy", "TERM",
    }  # fmt: skip
    argo = script(tmp_path, "env\n")
    printed = ProcessRunner(environ=environ | {"PATH": os.environ["PATH"]})([str(argo)], 5).stdout
    assert "xoxb-secret" not in printed and "s3cret" not in printed and "SLACK_" not in printed
    assert "KUBECONFIG=/k" in printed


def test_token_shaped_text_in_argo_errors_is_redacted(tmp_path: Path) -> None:
    argo = script(
        tmp_path, 'echo "Error: bad token xoxb-1234-abcd and Bearer eyJhbGciOiJ.eyJzdWIiOiJ.sig" >&2; exit 1\n'
    )
    orchestrator = ArgoCliOrchestrator(str(argo), "argo", 5)
    with pytest.raises(OrchestratorError) as raised:
        orchestrator.version()
    assert "xoxb-1234" not in raised.value.user_message and "eyJhbGci" not in raised.value.user_message
    assert "[redacted]" in raised.value.user_message


def test_output_is_capped_and_argo_is_stopped(tmp_path: Path) -> None:
    # A never-ending list of (non-envbot) workflows: parsed as it streams, stopped at the cap.
    argo = script(tmp_path, "printf '['\nexec yes '{\"metadata\": {}},'\n")
    orchestrator = ArgoCliOrchestrator(str(argo), "argo", 20, ProcessRunner(output_limit=1024 * 1024))
    started = time.monotonic()
    with pytest.raises(OrchestratorError, match="more than 1 MiB"):
        orchestrator.history(Scope())
    assert time.monotonic() - started < 15
    with pytest.raises(OrchestratorError, match="more than"):
        orchestrator.version()  # retained output is capped too (at 4 MiB or the limit)
    junk = ArgoCliOrchestrator(str(script(tmp_path, "exec yes junk\n", "junk")), "argo", 20)
    with pytest.raises(OrchestratorError, match="not a JSON list of workflows"):
        junk.history(Scope())  # junk is refused at its first bytes, not after reading it all


def test_a_grandchild_holding_stdout_cannot_stretch_the_call(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    argo = script(tmp_path, f'sleep 30 & echo $! > "{marker}"\necho "argo: v3.7.18"\nexit 0\n')
    started = time.monotonic()
    result = ProcessRunner()([str(argo)], 10)
    assert time.monotonic() - started < 5
    assert result.returncode == 0 and result.stdout.strip() == "argo: v3.7.18"
    time.sleep(0.2)
    assert not alive(int(marker.read_text()))  # the whole process group was ended


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    argo = script(tmp_path, f'sleep 60 & echo $! > "{marker}"\nsleep 60\n')
    orchestrator = ArgoCliOrchestrator(str(argo), "argo", 1)
    started = time.monotonic()
    with pytest.raises(OrchestratorError, match="did not answer within 1 s"):
        orchestrator.version()
    assert time.monotonic() - started < 5
    time.sleep(0.2)
    assert not alive(int(marker.read_text()))
    assert len(CHILDREN) == 0


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        (b"\x7fELF\x02\x01\x01garbage", 0o755, "exec format error"),
        (b"#!/bin/sh\necho hi\n", 0o644, "is not executable"),
    ],
)
@pytest.mark.parametrize("setpriv", [SETPRIV, None], ids=["setpriv", "fallback"])
def test_start_failures_have_plain_messages(
    tmp_path: Path, content: bytes, mode: int, message: str, setpriv: str | None
) -> None:
    argo = tmp_path / "argo"
    argo.write_bytes(content)
    argo.chmod(mode)
    runner = ProcessRunner(setpriv=setpriv)
    with pytest.raises(OrchestratorError, match=message):
        ArgoCliOrchestrator(str(argo), "argo", 5, runner).version()
    with pytest.raises(OrchestratorError, match="was not found"):
        ArgoCliOrchestrator(str(tmp_path / "missing"), "argo", 5, runner).version()
    with pytest.raises(OrchestratorError, match="was not found"):
        ArgoCliOrchestrator("no-such-argo-on-path", "argo", 5, runner).version()


def test_an_argo_that_exits_126_or_127_itself_is_not_mistaken_for_a_failed_start(tmp_path: Path) -> None:
    argo = script(tmp_path, 'echo "setpriv: failed to execute elsewhere: No such file or directory" >&2; exit 127\n')
    with pytest.raises(OrchestratorError, match="exit 127"):
        ArgoCliOrchestrator(str(argo), "argo", 5).version()


def test_argo_is_started_through_setpriv_without_python_in_the_child(tmp_path: Path) -> None:
    """The fast path: no preexec_fn (which forces a full fork), the parent-death signal set by setpriv."""
    assert SETPRIV is not None, "util-linux's setpriv is part of every supported image"
    argo = script(tmp_path, "grep -E '^(PPid|NSpgid|Pid):' /proc/$$/status\n")
    printed = ProcessRunner()([str(argo)], 5).stdout
    fields = dict(line.split(":\t") for line in printed.splitlines() if ":\t" in line)
    assert fields["Pid"] == fields["NSpgid"]  # its own process group
    assert int(fields["PPid"]) == os.getpid()  # setpriv exec'd argo in place: no process in between


@pytest.mark.parametrize("setpriv", [True, False], ids=["setpriv", "fallback"])
def test_argo_dies_with_the_bot_even_on_sigkill(tmp_path: Path, setpriv: bool) -> None:
    """PR_SET_PDEATHSIG (through setpriv, or preexec_fn without it): a SIGKILLed bot leaves no argo behind."""
    marker = tmp_path / "argo.pid"
    argo = script(tmp_path, f'echo $$ > "{marker}"\nexec sleep 60\n')
    runner = "ProcessRunner()" if setpriv else "ProcessRunner(setpriv=None)"
    parent = subprocess.Popen(
        [sys.executable, "-c", f"from slackbot.argo_cli import ProcessRunner; {runner}([{str(argo)!r}], 60)"],
        cwd=Path(__file__).resolve().parent.parent,
    )
    deadline = time.monotonic() + 10
    while not marker.exists() or not marker.read_text().strip():
        assert time.monotonic() < deadline, "argo never started"
        time.sleep(0.05)
    child = int(marker.read_text())
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_shutdown_kill_is_reported_as_a_restart(tmp_path: Path) -> None:
    argo = script(tmp_path, "sleep 30\n")
    orchestrator = ArgoCliOrchestrator(str(argo), "argo", 20)
    errors: list[str] = []

    def call() -> None:
        try:
            orchestrator.version()
        except OrchestratorError as error:
            errors.append(error.user_message)

    import threading

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while not len(CHILDREN) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert CHILDREN.kill_all() == 1
    thread.join(5)
    assert errors and "envbot restarted while argo was running" in errors[0]
