"""Ack latency and follow-up completion under a burst of slash commands against a slow argo.

Runs the real bot (HTTP mode, real Bolt, real signing) on loopback against the test suite's
stand-ins for Slack and argo. Bounded: a fixed number of commands, each with a timeout.

    .venv/bin/python bench/ack_latency.py --commands 120 --clients 60 --argo-delay 1.5
"""

import argparse
import io
import json
import logging
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slackbot.audit import AuditLog
from slackbot.slack.runtime import Runtime
from tests.conftest import FakeArgo, HttpBot, make_settings
from tests.fakes.slack_api import FakeSlack


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=120)
    parser.add_argument("--clients", type=int, default=60, help="commands in flight at once")
    parser.add_argument("--argo-delay", type=float, default=1.5, help="seconds each fake argo call takes")
    parser.add_argument("--concurrency", type=int, default=8, help="ARGO_CONCURRENCY")
    args = parser.parse_args()

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # as `envbot serve` configures it
    slack = FakeSlack().start()
    argo = FakeArgo(Path(tempfile.mkdtemp(prefix="envbot-bench-")))
    argo.configure(delay=args.argo_delay)
    runtime = Runtime(
        make_settings(argo, slack, argo_concurrency=args.concurrency, argo_timeout=600),
        mode="http",
        port=0,
        audit=AuditLog(stream=io.StringIO()),  # keep stdout for the report
    )
    runtime.verify_records()  # as `envbot serve` does at start-up
    runtime.start()
    bot = HttpBot(runtime, slack)
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
    finally:
        runtime.stop()
        slack.stop()
    wall = time.monotonic() - started
    acks = [a for a, _ in results]
    follow = [f for _, f in results]
    # Each create costs two argo calls (a scoped list, then submit).
    ideal = args.commands * 2 * args.argo_delay / args.concurrency
    report = {
        "commands": args.commands,
        "clients": args.clients,
        "argo_delay_s": args.argo_delay,
        "argo_concurrency": args.concurrency,
        "ack_ms": {
            "p50": 1000 * statistics.median(acks),
            "p95": 1000 * percentile(acks, 0.95),
            "max": 1000 * max(acks),
        },
        "follow_up_s": {"p50": statistics.median(follow), "p95": percentile(follow, 0.95), "max": max(follow)},
        "acks_over_3s": sum(a >= 3 for a in acks),
        "wall_s": wall,
        "ideal_wall_s": ideal,
    }
    print(json.dumps(report, indent=2))
    return 0 if report["acks_over_3s"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
