"""What envbot adds to a command, beside a naive Bolt bot, in one run (issue 17).

Both bots run as their own processes (`envbot serve --mode http`; bench/naive_bolt.py) against the
same Slack stand-in and the same near-zero-cost `argo` (a POSIX sh script: the latency L it adds is
`sleep L`, its own start-up is measured and reported). Measured:

- bot CPU per command (utime+stime of the bot process from /proc, children excluded), ack latency,
  and the latency each bot adds to a create's follow-up beyond argo itself, at L ~ 0;
- argo calls per create (default, `name=`, with a per-channel quota);
- start -> port open, start -> /readyz ready;
- the burst target at L > 0: one create's follow-up <= 1.1 x L, N creates <= 1.15 x ceil(N/C) x L.

`--rounds N` measures each bot N times, interleaved, and reports medians (and each round's CPU);
`--before DIR` adds the envbot whose `slackbot/` is in DIR (e.g. `git archive <commit> slackbot`);
`--threads-off-too` adds envbot with SLACK_THREADS=false (no channel message: issue 16's post and
update per create left out), to show what the message costs.

    .venv/bin/python bench/hot_path.py --commands 200 --latency 1.0 --burst 32 --concurrency 8 --rounds 3
"""

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import SIGNING_SECRET, http_request  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.replicas import serve_environment  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ARGO = """#!/bin/sh
# The bench's argo: answers at once (plus $ARGO_SLEEP), logs its verb, never touches a cluster.
echo "$1" >> "{calls}"
[ "$ARGO_SLEEP" = 0 ] || sleep "$ARGO_SLEEP"
case "$1" in
  version) echo "argo: v3.7.18" ;;
  list) echo "[]" ;;
  template) cat "{templates}/$3.json" ;;
  submit)
    name="env-create-template-$$"
    while [ $# -gt 0 ]; do [ "$1" = --name ] && name="$2"; shift; done
    echo "$name" ;;
esac
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: the process's own threads


class Setup:
    def __init__(self, folder: Path, slack: FakeSlack) -> None:
        self.folder, self.slack = folder, slack
        templates = folder / "templates"
        templates.mkdir()
        for path in (ROOT / "argo/workflowtemplates").glob("*.yaml"):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "WorkflowTemplate":
                    (templates / f"{doc['metadata']['name']}.json").write_text(json.dumps(doc))
        self.calls = folder / "calls.log"
        self.argo = folder / "argo"
        self.argo.write_text(ARGO.format(calls=self.calls, templates=templates))
        self.argo.chmod(0o755)
        self.policy = folder / "policy.yaml"
        self.policy.write_text(yaml.safe_dump({"quotas": {"per_user": 10, "per_channel": 10000}}))

    def env(self, latency: float, **extra: str) -> dict[str, str]:
        settings = {"ARGO_SLEEP": f"{latency:g}", "SHUTDOWN_DRAIN": "0", "ENVBOT_POLICY": str(self.policy),
                    "LOG_LEVEL": "WARNING"}  # fmt: skip
        return serve_environment(self.argo, self.slack, **(settings | extra))

    def verbs(self) -> list[str]:
        return self.calls.read_text().split() if self.calls.exists() else []


class Bot:
    """One bot process and a Slack that drives it."""

    def __init__(self, setup: Setup, argv: list[str], latency: float, ready_path: str, **env: str) -> None:
        self.setup, self.port = setup, free_port()
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*argv, str(self.port)], env=setup.env(latency, **env), cwd=setup.folder,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.to_port = self.to_ready = math.nan
        self._wait(ready_path)
        self.sequence = 0

    def _wait(self, ready_path: str) -> None:
        url = f"http://127.0.0.1:{self.port}{ready_path}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status = http_request(url).status
            except OSError:
                status = 0
            now = time.monotonic() - self.started
            if status and math.isnan(self.to_port):
                self.to_port = now
            if status == 200 or (status and ready_path == "/slack/events"):
                self.to_ready = now
                return
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.communicate()[1])
            time.sleep(0.002)
        raise RuntimeError("never ready")

    def command(self, text: str, user: str, channel: str = "C0BENCH") -> tuple[float, float]:
        """(ack seconds, follow-up seconds) of one signed slash command."""
        self.sequence += 1
        key = f"{self.port}-{self.sequence}"
        form = {
            "team_id": "T111", "channel_id": channel, "user_id": user, "command": "/env", "text": text,
            "api_app_id": "A111", "response_url": self.setup.slack.response_url(key), "trigger_id": f"1.2.{key}",
        }  # fmt: skip
        body = urlencode(form)
        stamp = str(int(time.time()))
        signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp,
                   "X-Slack-Signature": signature}  # fmt: skip
        sent = time.monotonic()
        ack = http_request(f"http://127.0.0.1:{self.port}/slack/events", body.encode(), headers)
        assert ack.status == 200, ack
        reply = self.setup.slack.wait_for(f"/response/{key}", 1, timeout=120)[0]
        return ack.elapsed, reply.at - sent

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=60)


def envbot(setup: Setup, latency: float, **env: str) -> Bot:
    bot = Bot(setup, [sys.executable, "-m", "slackbot", "serve", "--mode", "http", "--port"], latency, "/readyz",
              ENV_VIEW_REFRESH="600", **env)  # fmt: skip
    deadline = time.monotonic() + 60
    while "envbot_view_age_seconds +Inf" in http_request(f"http://127.0.0.1:{bot.port}/metrics").body:
        assert time.monotonic() < deadline, "the view never loaded"
        time.sleep(0.01)  # its first read of Argo (one `argo list`, L seconds) is still running
    return bot


def naive(setup: Setup, latency: float) -> Bot:
    return Bot(setup, [sys.executable, str(ROOT / "bench/naive_bolt.py")], latency, "/slack/events")


def per_command(bot: Bot, n: int, stub_seconds: float) -> dict[str, float]:
    for i in range(10):  # warm-up: first connections, imports on first use
        bot.command(f"create svc{i}", user=f"U{i:05d}WARM")
    before = cpu_seconds(bot.proc.pid)
    results = [bot.command(f"create svc{i}", user=f"U{i:05d}CPU") for i in range(n)]
    spent = cpu_seconds(bot.proc.pid) - before
    follow = statistics.median(f for _, f in results)
    return {
        "cpu_ms_per_command": round(1000 * spent / n, 2),
        "ack_p50_ms": round(1000 * statistics.median(a for a, _ in results), 2),
        "follow_up_p50_ms": round(1000 * follow, 2),
        "added_ms_per_command": round(1000 * (follow - stub_seconds), 2),
    }


def stub_seconds(setup: Setup, n: int = 50) -> float:
    """The argo stand-in's own cost per call (spawn to exit), which both bots pay."""
    env = setup.env(0)
    times = []
    for _ in range(n):
        started = time.monotonic()
        subprocess.run([str(setup.argo), "submit", "--name", "x"], env=env, capture_output=True, check=True)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def calls_per_create(setup: Setup) -> dict[str, int]:
    """The policy sets a per-user (10) and a per-channel quota, so every create checks both."""
    bot = envbot(setup, 0)
    found = {}
    try:
        for label, text in (("generated name", "create svc"), ("name=", "create svc name=named-one")):
            before = len(setup.verbs())
            bot.command(text, user="U0CALLS1")
            found[label] = len(setup.verbs()) - before
        for i in range(8):
            bot.command(f"create svc name=fill-{i}", user="U0CALLS1")
        before = len(setup.verbs())
        bot.command("create svc name=one-too-many", user="U0CALLS1")  # refused: the fresh read confirms it
        found["refused over quota (no submit)"] = len(setup.verbs()) - before
    finally:
        bot.stop()
    return found


def burst(setup: Setup, latency: float, n: int, concurrency: int) -> dict[str, float]:
    bot = envbot(setup, latency, ARGO_CONCURRENCY=str(concurrency), ARGO_TIMEOUT="120")
    try:
        single = bot.command("create svc", user="U0SINGLE")[1]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(lambda i: bot.command("create svc", user=f"U{i:05d}BURST"), range(n)))
        wall = time.monotonic() - started
    finally:
        bot.stop()
    floor = math.ceil(n / concurrency) * latency
    return {
        "L_s": latency, "single_follow_up_s": round(single, 3), "single_target_s": round(1.1 * latency, 3),
        "burst_n": n, "concurrency": concurrency, "burst_wall_s": round(wall, 3),
        "burst_target_s": round(1.15 * floor, 3), "burst_floor_s": floor,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0, help="L for the burst target, seconds")
    parser.add_argument("--burst", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8, help="ARGO_CONCURRENCY")
    parser.add_argument("--threads-off-too", action="store_true", help="also measure envbot with SLACK_THREADS=false")
    parser.add_argument("--before", help="a folder holding an earlier envbot's slackbot/, to measure it too")
    parser.add_argument("--rounds", type=int, default=1, help="measure every bot this many times, interleaved")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="envbot-hot-path-"))
    slack = FakeSlack().start()
    try:
        setup = Setup(folder, slack)
        stub = stub_seconds(setup)
        report: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
                                  "argo_stub_ms": round(1000 * stub, 2)}  # fmt: skip
        runs: list[tuple[str, Any]] = [("naive_bolt", naive), ("envbot", envbot)]
        if args.before:  # an earlier envbot (its `slackbot` package), measured in the same run
            runs.append(("envbot_before", lambda setup, latency: envbot(setup, latency, PYTHONPATH=args.before)))
        if args.threads_off_too:  # issue 16's channel message (a post and an update per create) left out
            runs.append(
                ("envbot_slack_threads_false", lambda setup, latency: envbot(setup, latency, SLACK_THREADS="false"))
            )
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _ in runs}
        for _ in range(args.rounds):  # interleaved, so a change in the machine's load hits every bot alike
            for name, start in runs:
                bot = start(setup, 0)
                try:
                    found = per_command(bot, args.commands, stub)
                    found |= {"start_to_port_s": round(bot.to_port, 3), "start_to_ready_s": round(bot.to_ready, 3)}
                    rounds[name].append(found)
                finally:
                    bot.stop()
        for name, found in rounds.items():  # the median of each figure over the rounds
            report[name] = {key: round(statistics.median(r[key] for r in found), 3) for key in found[0]}
            if args.rounds > 1:
                report[name]["cpu_ms_per_command_each_round"] = [r["cpu_ms_per_command"] for r in found]
        report["load_after"] = round(os.getloadavg()[0], 1)
        report["argo_calls_per_create"] = calls_per_create(setup)
        report["burst"] = burst(setup, args.latency, args.burst, args.concurrency)
    finally:
        slack.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
