"""Memory and argo calls of a create, and of `/env list all`, against a large workflow history.

Seeds the test suite's fake argo with N envbot workflows (full-size Workflow objects, about 14 KB
each, spread over many owners), then runs the real core (EnvBot, ArgoCliOrchestrator, the process
runner) in this process and measures the peak RSS each step adds (VmHWM, reset between steps).

The bot runs as shipped: with the view of environments (ENV_VIEW_REFRESH=30), loaded by the same
first read its refresher makes, so a create's checks read the view and its only argo call is the
submit. The same creates then run against a bot without the view (ENV_VIEW_REFRESH=0), which reads
the requester's environments (and a chosen name) from argo first, as before issue 17.

    .venv/bin/python bench/create_memory.py --history 5000
"""

import argparse
import gc
import io
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slackbot.argo_cli import ArgoCliOrchestrator
from slackbot.audit import AuditLog
from slackbot.bot import EnvBot
from slackbot.spec import Actor
from slackbot.view import EnvironmentView
from tests.execution_plane import ARGO_NAMESPACE
from tests.fakes.argo_handle import FakeArgo


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def reset_peak() -> float:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux)
    return peak_mib()


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def measure(label: str, step: Callable[[], object]) -> dict[str, object]:
    gc.collect()
    baseline, before = reset_peak(), rss_mib()
    started = time.monotonic()
    result = step()
    seconds = round(time.monotonic() - started, 2)
    added = round(peak_mib() - baseline, 1)
    gc.collect()
    kept = round(rss_mib() - before, 1)  # what the step left in memory (the view keeps its records)
    return {"step": label, "added_peak_mib": added, "kept_mib": kept, "seconds": seconds, "result": result}


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
    full = subprocess.run([str(argo.bin), "list", "-n", ARGO_NAMESPACE, "-o", "json"], capture_output=True, check=True)
    orchestrator = ArgoCliOrchestrator(str(argo.bin), ARGO_NAMESPACE, 600)
    bot = EnvBot(orchestrator, audit=AuditLog(stream=io.StringIO()), view_refresh=30)
    without_view = EnvBot(orchestrator, audit=AuditLog(stream=io.StringIO()), view_refresh=0)
    bot.services.retention.ensure()  # what `envbot serve` checks at start-up
    without_view.services.retention.ensure()

    def create(user: str, name: str, on: EnvBot = bot) -> list[str]:
        before = len(argo.calls())
        replies = on.handle(f"create checkout name={name}", Actor(user_id=user, channel_id="C0BENCH"))
        assert replies[-1].submitted, replies[-1].text
        return [argv[0] for argv in argv_after(argo, before)]

    def create_default(user: str, on: EnvBot = bot) -> list[str]:
        before = len(argo.calls())
        replies = on.handle("create checkout", Actor(user_id=user, channel_id="C0BENCH"))
        assert replies[-1].submitted, replies[-1].text
        return [argv[0] for argv in argv_after(argo, before)]

    def load_view() -> list[str]:
        before = len(argo.calls())
        bot.services.view.refresh()  # the refresher's first read: every envbot workflow, streamed
        return [argv[0] for argv in argv_after(argo, before)]

    def view_held() -> float:
        # RSS can't show it here (the seeding left free memory the view reuses): traced Python memory can.
        view = EnvironmentView(orchestrator, refresh=30)
        gc.collect()
        tracemalloc.start()
        view.refresh()
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert view.snapshot() is not None
        return round(held / 2**20, 1)  # MiB, for every workflow in history

    def concurrent() -> dict[str, int]:
        before = len(argo.calls())
        with ThreadPoolExecutor(max_workers=args.concurrent) as pool:
            list(pool.map(lambda i: create_default(f"U{i:05d}CONC"), range(args.concurrent)))
        return dict(Counter(argv[0] for argv in argv_after(argo, before)))

    def list_all() -> str:
        replies = bot.handle("list all", Actor(user_id="U00000HIST", channel_id="C0BENCH"))
        return replies[-1].text.splitlines()[0]

    def unscoped_json() -> int:
        # What the first version did on every create: the whole history, parsed at once.
        return len(json.loads(full.stdout))

    steps = [
        measure("the view's first read (all workflows, streamed; then one every ENV_VIEW_REFRESH)", load_view),
        measure("the view's records, held in memory (Python's own count, tracemalloc)", view_held),
        measure("create (generated name)", lambda: create_default("U00001HIST")),
        measure("create (name=)", lambda: create("U00002HIST", "bench-named")),
        measure(f"{args.concurrent} concurrent creates", concurrent),
        measure("list all (streamed)", list_all),
        measure("without the view: create (generated name)", lambda: create_default("U00003HIST", without_view)),
        measure("without the view: create (name=)", lambda: create("U00004HIST", "bench-unviewed", without_view)),
        measure("for comparison: json.loads of the unscoped list", unscoped_json),
    ]
    report = {
        "history_workflows": args.history,
        "unscoped_list_output_mib": round(len(full.stdout) / 2**20, 1),
        "steps": steps,
    }
    print(json.dumps(report, indent=2))
    default_create = steps[2]
    ok = default_create["added_peak_mib"] < 20 and len(default_create["result"]) <= 2  # type: ignore[arg-type]
    return 0 if ok else 1


def argv_after(argo: FakeArgo, before: int) -> list[list[str]]:
    return argo.calls()[before:]


if __name__ == "__main__":
    sys.exit(main())
