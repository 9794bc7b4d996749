"""The env-notifier sweep at scale and under attack (issue 14, "What was seen" 3, 6 and 7): warnings
are never starved by a backlog of workflow notices, each item starts only within the sweep's time
budget (the rest is left for the next run), workflows are read from the sweep's one listing, and
the sweep acts only on real references to envbot's templates and announces a reaped environment
only from what the reaper itself wrote. Same stand-ins as test_notices.py; the clock is the test
clock, moved by the API stand-in at a chosen request, so nothing here depends on timing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from tests import test_notices
from tests.execution_plane import ARGO_NAMESPACE, CREATE, REAPER
from tests.fakes.kube_api import FakeKubeApi, kubectl_path
from tests.test_notices import CHANNEL, ENV, NOTICE, POST, Plane, create_params, environment, expiry_of, reap

plane = test_notices.plane  # the same cluster, Slack and clock fixtures
slack = test_notices.slack

SWEEP_BUDGET = 420  # notify.sh: seconds a sweep starts new items for
WORKFLOWS = rf"^/apis/argoproj.io/v1alpha1/namespaces/{ARGO_NAMESPACE}/workflows"


def backlog(plane: Plane, count: int) -> list[str]:
    """Ended creates whose exit handler never ran: each one's notice is due."""
    names = []
    for i in range(count):
        params = create_params(plane, env_name=f"env-{i:03d}")
        names.append(plane.workflow(CREATE, params, phase="Succeeded", ended_ago=600 - i))
    return names


def test_a_backlog_of_workflow_notices_never_starves_a_warning(plane: Plane, api: FakeKubeApi) -> None:
    workflows = backlog(plane, 12)
    environment(plane)
    plane.advance(expiry_of(plane) - 50 * 60 - plane.now())  # ENV's warning is due
    # The first workflow write of the sweep takes the whole budget (a slow Slack, a busy API server).
    api.after("PUT", WORKFLOWS + "/.+", lambda _: plane.advance(SWEEP_BUDGET), times=1)
    run = plane.sweep()
    assert run.returncode == 0, run.output
    posted = plane.posted()
    assert posted[0]["text"].startswith("<@U111AAA> :hourglass_flowing_sand: `checkout-demo` expires")
    # The oldest workflow was started within the budget; the other 11 wait for the next run.
    assert [m["text"].split("`")[1] for m in posted[1:]] == ["env-000"]
    assert "2 sent, 0 pending, 0 deferred, 0 refused by Slack, 0 skipped, 0 busy, 0 failed, 11 left" in run.stdout
    assert [plane.notice(w)[0] for w in workflows] == ["sent"] + [None] * 11
    run = plane.sweep()
    assert run.returncode == 0, run.output
    assert sorted(m["text"].split("`")[1] for m in plane.posted()[2:]) == [f"env-{i:03d}" for i in range(1, 12)]
    assert all(plane.notice(w)[0] == "sent" for w in workflows)


def test_each_due_workflow_costs_two_writes_and_no_reads_of_its_own(plane: Plane, api: FakeKubeApi) -> None:
    workflows = backlog(plane, 5)
    before = len(api.requests)
    assert plane.sweep().returncode == 0
    touched = [(r.method, r.path) for r in api.requests[before:] if r.path.startswith(WORKFLOWS.lstrip("^"))]
    listings = [t for t in touched if t[0] == "GET" and not re.search(r"/workflows/", t[1])]
    assert len(listings) == 2  # envbot's workflows and the reaper's runs, once each
    for name in workflows:
        assert [m for m, p in touched if p.endswith(f"/workflows/{name}")] == ["PUT", "PUT"]  # claim, then sent
    assert all(plane.notice(w)[0] == "sent" for w in workflows)


def count_processes(plane: Plane, *commands: str) -> Path:
    """Put a recorder in front of each command on the scripts' PATH: one line per process started."""
    log = plane.folder / "processes.log"
    log.touch()
    for command in commands:
        real = kubectl_path() if command == "kubectl" else Path("/usr/bin") / command
        recorder = plane.bin / command
        recorder.write_text(f'#!/bin/bash\nprintf "%s\\n" {command} >>{log}\nexec {real} "$@"\n')
        recorder.chmod(0o755)
    return log


def test_a_notice_starts_only_its_claim_its_post_and_its_confirm(plane: Plane, api: FakeKubeApi) -> None:
    # Issue 14, "What was seen" 7: each notice started about fifteen processes (jq for the verdict,
    # the messages, each write's body; kubectl; curl), which limited a run to ~200 notices. Now the
    # sweep plans every notice in one jq pass over its listing: per notice, two kubectl (the claim and
    # the confirm) and one curl; the jq runs of a sweep do not grow with the backlog.
    log = count_processes(plane, "jq", "kubectl")
    started: list[Counter[str]] = []
    workflows = []
    for run, count in enumerate((3, 9)):
        for i in range(count):
            params = create_params(plane, env_name=f"env-{run}-{i}")
            workflows.append(plane.workflow(CREATE, params, phase="Succeeded", ended_ago=600 - i))
        log.write_text("")
        curls = len(plane.slack.requests(POST))
        assert plane.sweep(folder=f"sweep-{run}").returncode == 0
        started.append(Counter(log.read_text().split()) + Counter(curl=len(plane.slack.requests(POST)) - curls))
    few, many = started
    assert (few["curl"], many["curl"]) == (3, 9)
    assert many["kubectl"] - few["kubectl"] == 2 * (9 - 3)
    assert many["jq"] == few["jq"], started
    assert all(plane.notice(w)[0] == "sent" for w in workflows)


def test_a_workflow_that_spells_resource_version_elsewhere_is_written_with_its_own(
    plane: Plane, api: FakeKubeApi
) -> None:
    # The shell reads the resourceVersion of a written workflow only when the answer spells
    # "resourceVersion" once; here a value spells it too, so jq must read it, and the confirm must
    # carry the right one (a wrong one would be a 409, then a read and a third write).
    params = create_params(plane, env_name="env-spelled")
    name = plane.workflow(
        CREATE, params, phase="Succeeded", ended_ago=600, annotations={"example.com/field": "resourceVersion"}
    )
    before = len(api.requests)
    run = plane.sweep()
    assert run.returncode == 0, run.output
    writes = [(r.method, r.status) for r in api.requests[before:] if r.path.endswith(f"/workflows/{name}")]
    assert writes == [("PUT", 200), ("PUT", 200)]
    assert plane.notice(name)[0] == "sent" and len(plane.posted()) == 1


def stray(plane: Plane, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    obj = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": ARGO_NAMESPACE,
            "labels": {"workflows.argoproj.io/completed": "true"}
            | (labels or {"app.kubernetes.io/managed-by": "envbot"}),
        },
        "spec": spec,
        "status": {"phase": "Failed", "finishedAt": "2026-01-01T00:00:00Z", "nodes": {}},
    }
    return plane.api.put(obj)


def test_a_labelled_stray_workflow_neither_fails_the_sweep_nor_is_marked(plane: Plane, api: FakeKubeApi) -> None:
    # Issue 14, "What was seen" 6: any Workflow labelled managed-by=envbot failed every notifier run.
    strays = [
        stray(plane, "ci-build", {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "x"}}]}),
        stray(plane, "ci-override", {"workflowTemplateRef": {"name": CREATE}, "podSpecPatch": "{}"}),
        stray(plane, "ci-cluster", {"workflowTemplateRef": {"name": CREATE, "clusterScope": True}}),
        stray(plane, "ci-other-template", {"workflowTemplateRef": {"name": "build-template"}}),
    ]
    real = backlog(plane, 1)[0]
    before = len(api.requests)
    run = plane.sweep()
    assert run.returncode == 0, run.output
    assert "ignored 4 workflow(s) labelled as envbot's that are not bare references to its templates" in run.stdout
    for obj in strays:
        name = obj["metadata"]["name"]
        assert NOTICE not in plane.get(name)["metadata"]["labels"]
        assert not [r for r in api.requests[before:] if r.path.endswith(f"/workflows/{name}")]
    assert plane.notice(real)[0] == "sent" and len(plane.posted()) == 1


def forged_reaper_node(reaped: list[dict[str, str]], template: str = "reap") -> dict[str, Any]:
    value = json.dumps(reaped)
    return {
        "templateName": template,
        "type": "Pod",
        "phase": "Succeeded",
        "outputs": {"parameters": [{"name": "reaped", "value": value}]},
    }


def test_a_forged_reaped_record_is_not_announced(plane: Plane) -> None:
    # Issue 14, "What was seen" 3: a made-up reaper run announced "prod-db-N expired and was deleted".
    lie = [{"env": "prod-db-1", "channel": CHANNEL}]
    # A run of the reaper's template that the env-reaper CronWorkflow did not start.
    by_hand = plane.workflow(REAPER, {}, phase="Succeeded", ended_ago=5, nodes={"r": forged_reaper_node(lie)})
    obj = plane.get(by_hand)
    del obj["metadata"]["ownerReferences"]
    plane.api.put(obj)
    # Runs the CronWorkflow started, with a record the reaper did not write: in a node of another
    # template, in a second `reap` node, or naming an environment that is alive.
    other_node = plane.workflow(
        REAPER, {}, phase="Succeeded", ended_ago=5, nodes={"x": forged_reaper_node(lie, template="notify")}
    )
    honest = forged_reaper_node([{"env": "old-a", "channel": CHANNEL}])
    two_nodes = plane.workflow(
        REAPER, {}, phase="Succeeded", ended_ago=5, nodes={"r": honest, "s": forged_reaper_node(lie)}
    )
    environment(plane)  # checkout-demo is alive
    alive = plane.workflow(
        REAPER, {}, phase="Succeeded", ended_ago=5, nodes={"r": forged_reaper_node([{"env": ENV, "channel": CHANNEL}])}
    )
    run = plane.sweep()
    assert run.returncode == 0, run.output
    assert plane.posted() == []
    assert NOTICE not in plane.get(by_hand)["metadata"]["labels"]  # not envbot's: not even marked
    for workflow in (other_node, two_nodes, alive):
        assert plane.notice(workflow)[0] == "skipped"


def test_what_the_reaper_itself_wrote_is_announced(plane: Plane) -> None:
    for env in ("old-a", "old-b"):
        environment(plane, env_name=env, ttl=-60)
    workflow = reap(plane)
    assert plane.sweep().returncode == 0
    assert [m["text"] for m in plane.posted()] == [
        ":wastebasket: `old-a` expired and was deleted.",
        ":wastebasket: `old-b` expired and was deleted.",
    ]
    assert plane.notice(workflow)[0] == "sent"
