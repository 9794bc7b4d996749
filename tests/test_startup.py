"""`envbot serve` start-up: the port opens before anything slow; /readyz waits for the verified templates."""

import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import http_request, keep_extend_records_three_days
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.slack_api import FakeSlack
from tests.replicas import serve_environment


def serve(tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack, **env: str) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = serve_environment(fake_argo.bin, fake_slack, **({"SHUTDOWN_DRAIN": "0"} | env))
    proc = subprocess.Popen(
        [sys.executable, "-m", "slackbot", "serve", "--mode", "http", "--port", str(port)],
        env=environment, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


def wait_for(url: str, status: int, proc: subprocess.Popen[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = http_request(url)
            if answer.status == status:
                return answer.body
        except OSError:
            pass
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{url} never answered {status}"
        time.sleep(0.05)


def test_the_port_opens_while_the_templates_are_unreadable_and_ready_follows_them(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    fake_argo.configure(modes={"template": "hang"})
    proc, url = serve(tmp_path, fake_argo, fake_slack, ARGO_TIMEOUT="1")
    try:
        wait_for(f"{url}/healthz", 200, proc)  # serving while `argo template get` hangs
        unready = wait_for(f"{url}/readyz", 503, proc)
        assert unready in ("starting\n", "the WorkflowTemplates have not been verified yet\n")
        deadline = time.monotonic() + 30
        while not [argv for argv in fake_argo.calls() if argv[0] == "template"]:  # the hanging read has begun
            assert time.monotonic() < deadline, "envbot never read its templates"
            time.sleep(0.05)
        assert http_request(f"{url}/readyz").status == 503
        fake_argo.configure()  # argo answers again: the next attempt verifies them
        assert wait_for(f"{url}/readyz", 200, proc) == "ok\n"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "could not verify the WorkflowTemplates (not ready; retrying)" in err
    assert "WorkflowTemplates verified; ready" in err


def test_templates_that_would_lose_records_stop_the_bot_after_the_port_opened(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    keep_extend_records_three_days(fake_argo, tmp_path)
    proc, _ = serve(tmp_path, fake_argo, fake_slack)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "envbot is misconfigured and stops: WorkflowTemplate env-extend-template keeps its workflows 3d" in err
