"""What reading history also from the previous namespace costs (ARGO_PREVIOUS_NAMESPACE, docs/adr/0014).

The fake argo holds `--new` envbot workflows in envbot-workflows and `--old` in `argo` (the records
of environments created before the upgrade). For each read the bot makes, the setting off (one
`argo list`), on (two, side by side, as the bot does) and a naive "on" (the two one after the
other): argo calls and the median wall time of `--runs` reads. Then a create through the real bot
over signed HTTP with the view of environments fresh, setting on: its argo calls.

    .venv/bin/python bench/previous_namespace.py --new 500 --old 500
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slackbot.argo_cli import ArgoCliOrchestrator, ProcessRunner
from slackbot.orchestrator import Scope, WorkflowRecord
from slackbot.slack.runtime import Runtime
from tests.conftest import HttpBot, make_settings
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.slack_api import FakeSlack

NEW, OLD = "envbot-workflows", "argo"


def seed(argo: FakeArgo, count: int, namespace: str, prefix: str) -> None:
    def labels(i: int) -> dict[str, str]:
        return {
            "app.kubernetes.io/managed-by": "envbot",
            "envbot.dev/env": f"{prefix}-{i}",
            "envbot.dev/action": "create",
            "envbot.dev/service": "checkout",
            "envbot.dev/owner": f"U{i % 50:07d}",
            "envbot.dev/channel": "C111AAA",
        }

    def params(i: int) -> dict[str, str]:
        return {"env_name": f"{prefix}-{i}", "service": "checkout", "expires_at": "2999-01-01T00:00:00Z"}

    argo.seed(count, namespace=namespace, labels=labels, params=params)


def timed(read: Callable[[], list[WorkflowRecord]], argo: FakeArgo, runs: int) -> dict[str, Any]:
    seconds, calls = [], 0
    for _ in range(runs):
        before, started = len(argo.calls()), time.monotonic()
        found = read()
        seconds.append(time.monotonic() - started)
        calls = len(argo.calls()) - before
    return {"argo_calls": calls, "median_s": round(statistics.median(seconds), 3), "records": len(found)}


def reads(argo: FakeArgo, runs: int) -> list[dict[str, Any]]:
    off = ArgoCliOrchestrator(str(argo.bin), NEW, 60, ProcessRunner())
    on = ArgoCliOrchestrator(str(argo.bin), NEW, 60, ProcessRunner(), previous_namespace=OLD)
    rows = []
    for what, scope in (("every workflow (the view's refresh, /env list all)", Scope()),
                        ("one environment (/env status, extend, destroy)", Scope(env_name="old-7")),
                        ("one owner (a create without a fresh view)", Scope(owner="U0000007"))):  # fmt: skip
        rows.append({"read": what, "setting": "off"} | timed(lambda s=scope: off.history(s), argo, runs))
        rows.append({"read": what, "setting": "on"} | timed(lambda s=scope: on.history(s), argo, runs))
        naive = timed(lambda s=scope: on.history_in(NEW, s) + on.history_in(OLD, s), argo, runs)
        rows.append({"read": what, "setting": "on, naive (one after the other)"} | naive)
    return rows


def create_calls(argo: FakeArgo) -> dict[str, Any]:
    slack = FakeSlack().start()
    runtime = Runtime(
        make_settings(argo, slack, argo_previous_namespace=OLD, env_view_refresh=600), mode="http", port=0
    )
    runtime.start()
    try:
        runtime.warm_up()
        assert runtime.bot.services.view.wait_loaded(120)
        bot = HttpBot(runtime, slack)
        before, started = len(argo.calls()), time.monotonic()
        _, path = bot.command("create checkout name=bench-after-upgrade")
        text = bot.reply(path, timeout=60)["text"]
        return {
            "create with the setting on, view fresh": [argv[0] for argv in argv_since(argo, before)],
            "follow-up_s": round(time.monotonic() - started, 3),
            "submitted": "requested environment" in text,
        }
    finally:
        runtime.stop()
        slack.stop()


def argv_since(argo: FakeArgo, before: int) -> list[list[str]]:
    return argo.calls()[before:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new", type=int, default=500)
    parser.add_argument("--old", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    argo = FakeArgo(Path(tempfile.mkdtemp(prefix="envbot-bench-previous-")))
    seed(argo, args.new, NEW, "new")
    seed(argo, args.old, OLD, "old")
    for row in reads(argo, args.runs):
        print(json.dumps(row), flush=True)
    print(json.dumps(create_calls(argo)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
