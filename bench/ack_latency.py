"""Ack latency and follow-up completion under a burst of slash commands against a slow argo.

Runs the real bot (HTTP mode, real Bolt, real signing) on loopback against the test suite's
stand-ins for Slack and argo, as `envbot serve` ships: templates verified, the view of environments
loaded and refreshed (ENV_VIEW_REFRESH, 30 s), one channel message per environment (SLACK_THREADS).
In the same run, the same burst against a bot without the view (ENV_VIEW_REFRESH=0): each create
then reads the requester's environments from argo before its submit, as before issue 17.
Bounded: a fixed number of commands, each with a timeout.

    .venv/bin/python bench/ack_latency.py --commands 120 --clients 60 --argo-delay 1.5
"""

import argparse
import io
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slackbot.audit import AuditLog
from slackbot.slack.runtime import Runtime
from tests.conftest import FakeArgo, HttpBot, make_settings
from tests.fakes.slack_api import FakeSlack


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def own_cost(argo: FakeArgo, calls: int = 10) -> float:
    """What one call of the argo stand-in (a Python program) costs beyond its configured delay."""
    started = time.monotonic()
    for _ in range(calls):
        subprocess.run([str(argo.bin), "version"], capture_output=True, check=True)
    return (time.monotonic() - started) / calls


def burst(args: argparse.Namespace, view_refresh: float) -> dict[str, Any]:
    slack = FakeSlack().start()
    argo = FakeArgo(Path(tempfile.mkdtemp(prefix="envbot-bench-")))
    stand_in_s = own_cost(argo)
    argo.configure(delay=args.argo_delay)
    runtime = Runtime(
        make_settings(
            argo, slack, argo_concurrency=args.concurrency, argo_timeout=600, slack_threads=True,
            env_view_refresh=view_refresh,
        ),
        mode="http",
        port=0,
        audit=AuditLog(stream=io.StringIO()),  # keep stdout for the report
    )  # fmt: skip
    runtime.verify_records()  # as `envbot serve` does at start-up
    runtime.start()
    runtime.warm_up()  # templates verified, then the view's first read (one `argo list`) and its refresher
    deadline = time.monotonic() + 60
    while not runtime.ready()[0]:  # the templates are verified
        assert time.monotonic() < deadline, runtime.ready()[1]
        time.sleep(0.01)
    view = runtime.bot.services.view
    if view.enabled:
        assert view.wait_loaded(60), "the view never loaded"
    bot = HttpBot(runtime, slack)
    calls_before = len(argo.calls())
    started = time.monotonic()

    def one(i: int) -> tuple[float, float]:
        sent = time.monotonic()
        ack, path = bot.command(f"create svc{i}", user=f"U{i:05d}BENCH")
        assert ack.status == 200, ack
        reply = slack.wait_for(path, 1, timeout=600)[0]
        return ack.elapsed, reply.at - sent

    try:
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            results = list(pool.map(one, range(args.commands)))
        wall = time.monotonic() - started
        verbs = [argv[0] for argv in argo.calls()[calls_before:]]
    finally:
        runtime.stop()
        slack.stop()
    acks = [a for a, _ in results]
    follow = [f for _, f in results]
    # `template get`s are start-up's verification finishing; the view's refreshes (`list`, off the create
    # path, one every ENV_VIEW_REFRESH) are counted with the creates' own calls.
    work = [verb for verb in verbs if verb != "template"]
    return {
        "argo_calls": dict(Counter(verbs)),
        "argo_calls_per_create": round(len(work) / max(1, work.count("submit")), 2),
        "ack_ms": {
            "p50": round(1000 * statistics.median(acks), 1),
            "p95": round(1000 * percentile(acks, 0.95), 1),
            "max": round(1000 * max(acks), 1),
        },
        "follow_up_s": {
            "p50": round(statistics.median(follow), 2),
            "p95": round(percentile(follow, 0.95), 2),
            "max": round(max(follow), 2),
        },
        "acks_over_3s": sum(a >= 3 for a in acks),
        "argo_stand_in_own_cost_s": round(stand_in_s, 3),  # one call, alone; more when 8 run at once
        "wall_s": round(wall, 2),
        # What the argo calls alone would take, ARGO_CONCURRENCY at a time.
        "ideal_wall_s": round(len(work) * args.argo_delay / args.concurrency, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=120)
    parser.add_argument("--clients", type=int, default=60, help="commands in flight at once")
    parser.add_argument("--argo-delay", type=float, default=1.5, help="seconds each fake argo call takes")
    parser.add_argument("--concurrency", type=int, default=8, help="ARGO_CONCURRENCY")
    args = parser.parse_args()

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # as `envbot serve` configures it
    report = {
        "commands": args.commands,
        "clients": args.clients,
        "argo_delay_s": args.argo_delay,
        "argo_concurrency": args.concurrency,
        "as_shipped (the view, ENV_VIEW_REFRESH=30)": burst(args, 30.0),
        "without the view (ENV_VIEW_REFRESH=0)": burst(args, 0.0),
    }
    print(json.dumps(report, indent=2))
    return 0 if all(run["acks_over_3s"] == 0 for run in report.values() if isinstance(run, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
