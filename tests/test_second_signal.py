"""Issue 18: a second signal ends at once, but everyone whose command was taken is told what happened."""

import signal
import time
from pathlib import Path

import pytest

from tests.conftest import FakeArgo, alive, http_request
from tests.fakes.slack_api import FakeSlack
from tests.test_edge import post_command, serve


@pytest.mark.serial
def test_a_second_signal_still_tells_every_running_and_queued_command(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    proc, url = serve(tmp_path, fake_argo, fake_slack, SHUTDOWN_GRACE="60", ARGO_TIMEOUT="120", ARGO_CONCURRENCY="8")
    try:
        fake_argo.configure(modes={"submit": "hang"})
        for n in range(10):  # eight run (and hang in argo submit), two wait for a worker
            assert (
                post_command(url, fake_slack, f"create checkout name=sig-{n}", f"sig{n}", user=f"U0SIG{n:04d}") == 200
            )
        deadline = time.monotonic() + 30
        while len(fake_argo.submits()) < 8:
            assert time.monotonic() < deadline, "the commands never reached argo"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        while http_request(f"{url}/readyz").status == 200:  # the first signal was taken: draining
            assert time.monotonic() < deadline, "SIGTERM was not taken"
            time.sleep(0.05)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGINT
    assert took < 3  # about a second to tell everyone, then gone
    answers = [fake_slack.wait_for(f"/response/sig{n}", timeout=1)[0].body["text"] for n in range(10)]
    running, queued = answers[:8], answers[8:]
    for text in running:  # their argo calls were stopped: said so, with what to check
        assert "`/env status" in text and ("may have been created anyway" in text or "stopped" in text), text
    assert all("restarting; nothing was submitted" in text for text in queued), queued
    assert not any(alive(pid) for pid in fake_argo.pids())
