"""The reaper against 1,000 expired environments: each run's time, deletes and API requests.

Real kubectl against the Kubernetes API stand-in (tests/fakes/kube_api.py, with argo/'s RBAC and
admission installed by tests/fakes/cluster.install, as in the tests), the reaper script rendered as
Argo renders it, run as envbot-reaper, deleting (reaper_dry_run false). The new reaper
runs until the backlog is cleared, at its default cap (reaper_max_deletes 50); the old one (from
git, bench/plane_baseline.py) runs once on the same number of environments, killed at the
template's 600 s deadline as Argo would. The load average is printed before the runs and with
each result: the machine is shared.

    .venv/bin/python bench/reaper_scale.py --environments 1000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import plane_baseline
from tests.execution_plane import ARGO_NAMESPACE, REAPER, SETTINGS, render, run_script
from tests.fakes.cluster import install
from tests.fakes.kube_api import FakeKubeApi, kubectl_env

DEADLINE = 600  # activeDeadlineSeconds of env-reaper-template
USER = f"system:serviceaccount:{ARGO_NAMESPACE}:envbot-reaper"


def seed(api: FakeKubeApi, count: int) -> None:
    for i in range(count):
        name = f"env-{i:04d}"
        expired = (datetime.now(UTC) - timedelta(minutes=count - i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        labels = {
            "app.kubernetes.io/managed-by": "envbot",
            "envbot.dev/instance": "envbot",
            "envbot.dev/env": name,
            "envbot.dev/service": "checkout",
            "envbot.dev/requested-by": "U111AAA",
        }
        annotations = {
            "envbot.dev/expires-at": expired,
            "janitor/expires": expired,
            "envbot.dev/slack-channel": "C111AAA",
            "envbot.dev/warn-before": "3600,600",
            "envbot.dev/extend-choices": "2h,1d",
        }
        api.add_namespace(name, labels, annotations)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def deleted(api: FakeKubeApi) -> int:
    return sum(1 for r in api.requests if r.method == "DELETE" and r.status == 200)


def new_reaper(count: int, folder: Path) -> dict[str, object]:
    api = FakeKubeApi().start()
    try:
        install(api)  # RBAC and admission from argo/ judge every request, as in the tests
        seed(api, count)
        base = kubectl_env(api, folder / "home", user=USER)
        settings = SETTINGS | {"reaper_dry_run": "false"}
        runs = []
        while deleted(api) < count and len(runs) < count:
            before, started = len(api.requests), time.monotonic()
            run = run_script(render(REAPER, {}, settings), folder / "pod", base, timeout=DEADLINE)
            seconds = time.monotonic() - started
            if run.returncode != 0:
                raise SystemExit(run.output)
            runs.append({"seconds": round(seconds, 2), "requests": len(api.requests) - before})
        per_run = [r["seconds"] for r in runs]
        return {
            "behaviour": f"new: at most {settings['reaper_max_deletes']} per run",
            "environments": count,
            "runs_to_clear": len(runs),
            "max_run_seconds": max(per_run),
            "mean_run_seconds": round(sum(per_run) / len(per_run), 2),
            "requests_per_run": sorted({r["requests"] for r in runs}),
            "deleted": deleted(api),
            "load_average_after": load(),
        }
    finally:
        api.stop()


def old_reaper(count: int, folder: Path) -> dict[str, object] | None:
    libs = plane_baseline.libraries()
    rendered = plane_baseline.rendered(REAPER, SETTINGS | {"reaper_dry_run": "false"}, {})
    if libs is None or rendered is None:
        return None
    api = FakeKubeApi().start()
    try:
        install(api)  # RBAC and admission from argo/ judge every request, as in the tests
        seed(api, count)
        base = kubectl_env(api, folder / "old-home", user=USER)
        started = time.monotonic()
        run = plane_baseline.run(rendered, folder / "old-pod", base, libs, timeout=DEADLINE)
        return {
            "behaviour": "old: everything in one run",
            "environments": count,
            "seconds": round(time.monotonic() - started, 2),
            "killed_at_deadline": run.returncode == -9,
            "exit_status": run.returncode,
            "deleted": deleted(api),
            "load_average_after": load(),
        }
    finally:
        api.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environments", type=int, default=1000)
    parser.add_argument("--skip-old", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="envbot-bench-reaper-"))
    print(json.dumps({"cpus": os.cpu_count(), "load_average_before": load()}), flush=True)
    results = [new_reaper(args.environments, folder)]
    print(json.dumps(results[0]), flush=True)
    if not args.skip_old:
        old = old_reaper(args.environments, folder)
        print(json.dumps(old if old is not None else {"behaviour": "old", "skipped": "no git history"}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
