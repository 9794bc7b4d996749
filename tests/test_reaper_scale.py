"""The reaper at scale (issue 14, "What was seen" 7): at most `reaper_max_deletes` deletes per run,
most overdue first, with bookkeeping that does not grow with the listing; a backlog is cleared over
successive runs. Real kubectl against the Kubernetes API stand-in, as in test_execution_plane.py.
Timing is measured by bench/reaper_scale.py, never asserted here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.execution_plane import REAPER, SETTINGS
from tests.fakes.kube_api import FakeKubeApi
from tests.test_execution_plane import FUTURE, Plane, owned, terminating

CHANNELS = ("C111AAA", "C222BBB")


@pytest.fixture
def plane(api: FakeKubeApi, tmp_path: Path) -> Plane:
    return Plane(api, tmp_path)


def expired(api: FakeKubeApi, name: str, hours_ago: int, channel: str) -> None:
    when = (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    owned(api, name, when)
    ns = api.namespace(name)
    assert ns is not None
    ns["metadata"]["annotations"]["envbot.dev/slack-channel"] = channel
    api.put(ns)


def reaped(plane: Plane) -> list[dict[str, str]]:
    result: list[dict[str, str]] = json.loads((plane.folder / "pod" / "envbot-reaped.json").read_text())
    return result


def test_a_backlog_is_cleared_over_successive_runs_at_most_the_cap_each_most_overdue_first(plane: Plane) -> None:
    # env-01 expired 12 hours ago, env-12 an hour ago: the order they are due in, shuffled in the listing.
    order = [f"env-{i:02d}" for i in range(1, 13)]
    for i in (7, 2, 11, 5, 1, 9, 12, 3, 6, 10, 4, 8):
        expired(plane.api, f"env-{i:02d}", 13 - i, CHANNELS[i % 2])
    owned(plane.api, "live-a", FUTURE)
    owned(plane.api, "live-b", FUTURE)

    seen: list[str] = []
    for run_number, (batch, left) in enumerate(((order[:5], 7), (order[5:10], 2), (order[10:], 0)), 1):
        before = len(plane.api.requests)
        run = plane.reap(reaper_max_deletes="5")
        assert run.returncode == 0, run.output
        assert [r.path.rsplit("/", 1)[1] for r in plane.api.requests[before:] if r.method == "DELETE"] == batch
        # The previous runs' deletions are still Terminating: skipped, and not counted against the cap.
        assert f"{len(batch)} expired, 2 live, {len(seen)} skipped, 0 failed, {left} left for the next run" in (
            run.stdout
        ), run_number
        # Only what this run deleted, each with its channel.
        assert reaped(plane) == [{"env": n, "channel": CHANNELS[int(n[-2:]) % 2], "thread": ""} for n in batch]
        # One listing and the deletes: nothing is read again per delete.
        methods = [r.method for r in plane.api.requests[before:] if r.path.startswith("/api/v1/namespaces")]
        assert methods == ["GET"] + ["DELETE"] * len(batch)
        seen += batch
    assert all(terminating(plane.api, name) for name in order)
    assert not terminating(plane.api, "live-a") and not terminating(plane.api, "live-b")


def test_the_cap_defaults_to_50_and_a_dry_run_reports_what_later_runs_would_delete(plane: Plane) -> None:
    assert SETTINGS["reaper_max_deletes"] == "50"
    for i in range(53):
        expired(plane.api, f"old-{i:02d}", 60 - i, CHANNELS[0])
    unset = {k: v for k, v in SETTINGS.items() if k != "reaper_max_deletes"}
    run = plane.run(REAPER, unset | {"reaper_dry_run": "true"})
    assert run.returncode == 0, run.output
    assert "(dry run: nothing deleted): 50 expired, 0 live, 0 skipped, 0 failed, 3 left for the next run" in run.stdout
    assert "would delete old-49 (expired) [dry run]" in run.stdout and "old-50" not in run.stdout
    assert plane.deletes() == [] and reaped(plane) == []


def test_a_failed_delete_counts_against_the_cap_and_fails_the_run_after_the_others(plane: Plane) -> None:
    for i in range(1, 5):
        expired(plane.api, f"env-{i}", 10 - i, CHANNELS[0])
    denied = "namespace env-1 is protected"
    plane.api.fail("DELETE", r"^/api/v1/namespaces/env-1$", 403, times=99, reason="Forbidden", message=denied)
    run = plane.reap(reaper_max_deletes="2")
    assert run.returncode != 0
    assert plane.deletes() == ["env-1", "env-2"]
    assert "1 expired, 0 live, 0 skipped, 1 failed, 2 left for the next run" in run.stdout
    assert reaped(plane) == [{"env": "env-2", "channel": CHANNELS[0], "thread": ""}]
    assert "the reaper could not delete 1 environment(s): env-1" in run.stderr
