"""The env-notifier sweep against 1,000 unsettled workflows and one warning that is due.

Real kubectl against the Kubernetes API stand-in (with argo/'s RBAC and admission installed), real
curl against the Slack Web API stand-in, the notifier script rendered as Argo renders it, run as
envbot-notify. Measures one sweep: its time, how many notices it settled, the API requests per
workflow, and when the warning went out (its position among the posts). The sweep as it was before
its notices were planned in the listing pass (git commit BEFORE, read by bench/plane_baseline.py)
runs on the same seed in the same run, killed at the template's 600 s deadline as Argo would. The
load average is printed with each result: the machine is shared.

    .venv/bin/python bench/notifier_scale.py --workflows 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import plane_baseline
from tests.execution_plane import ARGO_NAMESPACE, CREATE, NOTIFIER, SETTINGS, Run, render, run_script, template
from tests.fakes.cluster import install
from tests.fakes.kube_api import FakeKubeApi, kubectl_env
from tests.fakes.slack_api import FakeSlack

DEADLINE = 600  # activeDeadlineSeconds of env-notifier-template
BEFORE = "96cc71c"  # main before the sweep planned its notices in one jq pass (issue 14, the notifier at scale)
USER = f"system:serviceaccount:{ARGO_NAMESPACE}:envbot-notify"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def seed(api: FakeKubeApi, count: int) -> None:
    """`count` creates that ended 5 minutes ago without a notice, and one environment due a warning."""
    now = datetime.now(UTC)
    spec = template(CREATE)["spec"]
    for i in range(count):
        env = f"env-{i:04d}"
        params = {"env_name": env, "service": "checkout", "expires_at": stamp(now + timedelta(hours=4))}
        params |= {"requested_by": "U111AAA", "slack_channel": "C111AAA"}
        api.put(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "metadata": {
                    "name": f"env-create-template-{secrets.token_hex(3)}",
                    "namespace": ARGO_NAMESPACE,
                    "labels": dict(spec["workflowMetadata"]["labels"])
                    | {"workflows.argoproj.io/completed": "true", "workflows.argoproj.io/workflow-template": CREATE},
                },
                "spec": {
                    "workflowTemplateRef": {"name": CREATE},
                    "arguments": {"parameters": [{"name": k, "value": v} for k, v in params.items()]},
                },
                "status": {
                    "phase": "Succeeded",
                    "startedAt": stamp(now - timedelta(minutes=6)),
                    "finishedAt": stamp(now - timedelta(minutes=5)),
                    "storedWorkflowTemplateSpec": spec,
                    "nodes": {},
                },
            }
        )
    labels = {
        "app.kubernetes.io/managed-by": "envbot",
        "envbot.dev/instance": "envbot",
        "envbot.dev/env": "due-warning",
        "envbot.dev/service": "checkout",
        "envbot.dev/requested-by": "U222BBB",
    }
    expires = stamp(now + timedelta(minutes=50))
    annotations = {
        "envbot.dev/expires-at": expires,
        "janitor/expires": expires,
        "envbot.dev/slack-channel": "C222BBB",
        "envbot.dev/warn-before": "3600",
        "envbot.dev/extend-choices": "2h",
        "envbot.dev/expiry-set-at": stamp(now - timedelta(hours=4)),
        "envbot.dev/incarnation": "env-create-template-abc123",
    }
    api.add_namespace("due-warning", labels, annotations)


def sweep(count: int, folder: Path, old: bool) -> dict[str, Any] | None:
    api, slack = FakeKubeApi().start(), FakeSlack().start()
    try:
        install(api)  # RBAC and admission from argo/ judge every request, as in the tests
        seed(api, count)
        token = folder / "bot-token"
        token.write_text("xoxb-" + secrets.token_hex(16))
        base = kubectl_env(api, folder / ("old-home" if old else "home"), user=USER)
        base["ENVBOT_SLACK_TOKEN_FILE"] = str(token)
        api_url = folder / "slack_api_url"  # the notice Secret's key since docs/adr/0014
        api_url.write_text(slack.api_url)
        base["ENVBOT_SLACK_API_URL_FILE"] = str(api_url)
        settings = SETTINGS | {"notices": "on"}
        before, started = len(api.requests), time.monotonic()
        run: Run
        if old:
            libs, rendered = plane_baseline.libraries(BEFORE), plane_baseline.rendered(NOTIFIER, settings, {}, BEFORE)
            if libs is None or rendered is None:
                return None
            run = plane_baseline.run(rendered, folder / "old-pod", base, libs, timeout=DEADLINE)
        else:
            run = run_script(render(NOTIFIER, {}, settings), folder / "pod", base, timeout=DEADLINE)
        seconds = time.monotonic() - started
        posts = [r for r in slack.received if r.path.endswith("chat.postMessage")]
        warning = [i for i, r in enumerate(posts) if r.body.get("channel") == "C222BBB"]
        requests = len(api.requests) - before
        settled = len(posts) - len(warning)
        return {
            "behaviour": f"before ({BEFORE})" if old else "new",
            "workflows": count,
            "seconds": round(seconds, 1),
            "notices_per_second": round(settled / seconds, 2),
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "killed_at_deadline": run.returncode == -9,
            "workflow_notices_sent": settled,
            "workflows_marked_sent": sum(
                1
                for w in api.objects("Workflow", ARGO_NAMESPACE)
                if w["metadata"].get("labels", {}).get("envbot.dev/notice") == "sent"
            ),
            "api_requests_per_workflow": round(requests / count, 2),
            # ru_maxrss of every process this bench waited for so far (the new sweep runs first).
            "largest_process_so_far_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
            "warning_sent_as_post": warning[0] + 1 if warning else None,
            "last_line": (run.stdout.strip().splitlines() or [""])[-1][:200],
        }
    finally:
        api.stop()
        slack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--skip-old", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="envbot-bench-notifier-"))
    machine = {"cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(machine), flush=True)
    print(json.dumps(sweep(args.workflows, folder, old=False)), flush=True)
    if not args.skip_old:
        old = sweep(args.workflows, folder, old=True)
        print(json.dumps(old if old is not None else {"behaviour": "before", "skipped": "no git history"}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
