"""Memory and argo calls of a create, and of `/env list all`, against a large workflow history.

Seeds the test suite's fake argo with N envbot workflows (full-size Workflow objects, about 14 KB
each, spread over many owners), then runs the real core (EnvBot, ArgoCliOrchestrator, the process
runner) in this process and measures the peak RSS each step adds (VmHWM, reset between steps).

    .venv/bin/python bench/create_memory.py --history 5000
"""

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slackbot.argo_cli import ArgoCliOrchestrator
from slackbot.audit import AuditLog
from slackbot.bot import EnvBot
from slackbot.spec import Actor
from tests.fakes.argo_handle import FakeArgo


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def reset_peak() -> float:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux)
    return peak_mib()


def measure(label: str, step: Callable[[], object]) -> dict[str, object]:
    baseline = reset_peak()
    started = time.monotonic()
    result = step()
    added = round(peak_mib() - baseline, 1)
    return {"step": label, "added_peak_mib": added, "seconds": round(time.monotonic() - started, 2), "result": result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=5000)
    parser.add_argument("--owners", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=8)
    args = parser.parse_args()

    argo = FakeArgo(Path(tempfile.mkdtemp(prefix="envbot-bench-")))
    expired = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    argo.seed(
        args.history,
        params=lambda i: {
            "env_name": f"hist-{i}",
            "service": "svc",
            "expires_at": expired,
        },
        labels=lambda i: {
            "app.kubernetes.io/managed-by": "envbot",
            "envbot.dev/env": f"hist-{i}",
            "envbot.dev/action": "create",
            "envbot.dev/owner": f"U{i % args.owners:05d}HIST",
            "envbot.dev/requested-by": f"U{i % args.owners:05d}HIST",
        },
    )
    full = subprocess.run([str(argo.bin), "list", "-n", "argo", "-o", "json"], capture_output=True, check=True)
    orchestrator = ArgoCliOrchestrator(str(argo.bin), "argo", 600)
    bot = EnvBot(orchestrator, audit=AuditLog(stream=io.StringIO()))
    bot.services.retention.ensure()  # what `envbot serve` checks at start-up

    def create(user: str, name: str) -> list[str]:
        before = len(argo.calls())
        replies = bot.handle(f"create checkout name={name}", Actor(user_id=user, channel_id="C0BENCH"))
        assert replies[-1].submitted, replies[-1].text
        return [argv[0] for argv in argv_after(argo, before)]

    def create_default(user: str) -> list[str]:
        before = len(argo.calls())
        replies = bot.handle("create checkout", Actor(user_id=user, channel_id="C0BENCH"))
        assert replies[-1].submitted, replies[-1].text
        return [argv[0] for argv in argv_after(argo, before)]

    def concurrent() -> int:
        with ThreadPoolExecutor(max_workers=args.concurrent) as pool:
            done = list(pool.map(lambda i: create_default(f"U{i:05d}CONC"), range(args.concurrent)))
        return len(done)

    def list_all() -> str:
        replies = bot.handle("list all", Actor(user_id="U00000HIST", channel_id="C0BENCH"))
        return replies[-1].text.splitlines()[0]

    def unscoped_json() -> int:
        # What the first version did on every create: the whole history, parsed at once.
        return len(json.loads(full.stdout))

    steps = [
        measure("create (generated name)", lambda: create_default("U00001HIST")),
        measure("create (name=)", lambda: create("U00002HIST", "bench-named")),
        measure(f"{args.concurrent} concurrent creates", concurrent),
        measure("list all (streamed)", list_all),
        measure("for comparison: json.loads of the unscoped list", unscoped_json),
    ]
    report = {
        "history_workflows": args.history,
        "unscoped_list_output_mib": round(len(full.stdout) / 2**20, 1),
        "steps": steps,
    }
    print(json.dumps(report, indent=2))
    default_create = steps[0]
    ok = default_create["added_peak_mib"] < 20 and len(default_create["result"]) <= 2  # type: ignore[arg-type]
    return 0 if ok else 1


def argv_after(argo: FakeArgo, before: int) -> list[list[str]]:
    return argo.calls()[before:]


if __name__ == "__main__":
    sys.exit(main())
