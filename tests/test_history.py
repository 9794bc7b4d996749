"""History into environments: the fold follows lineage facts, and `argo list` output is read item by item."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from slackbot.argo_cli.output import NotAWorkflowList, WorkflowListReader, workflow_detail, workflow_record
from slackbot.history import HistoryReader, fold
from slackbot.orchestrator import Scope, WorkflowRecord

T0 = datetime(2026, 11, 28, 10, tzinfo=UTC)


def rec(name: str, action: str, env: str = "a", seconds: int = 0, **extra: Any) -> WorkflowRecord:
    return WorkflowRecord(name=name, action=action, env_name=env, created_at=T0 + timedelta(seconds=seconds), **extra)


def test_extends_count_and_the_latest_one_that_did_not_fail_sets_the_expiry() -> None:
    found = fold(
        [
            rec("c1", "create", owner="U1", expires_at=T0 + timedelta(hours=1)),
            rec("e1", "extend", seconds=60, incarnation="c1", after="c1", expires_at=T0 + timedelta(hours=5)),
            rec("e2", "extend", seconds=120, incarnation="c1", after="e1", expires_at=T0 + timedelta(hours=3)),
            rec(
                "e3",
                "extend",
                seconds=180,
                incarnation="c1",
                after="e2",
                expires_at=T0 + timedelta(hours=9),
                phase="Failed",
            ),
        ]
    )
    env = found["a"]
    # Past its original expiry the environment is live because of the extends, and counts as such.
    assert env.expires_at == T0 + timedelta(hours=3)
    assert env.is_live(T0 + timedelta(hours=2))
    assert not env.is_live(T0 + timedelta(hours=3))
    assert env.latest.name == "e3"


def test_same_second_extends_are_ordered_by_their_chain_not_their_names() -> None:
    found = fold(
        [
            rec("c1", "create", expires_at=T0 + timedelta(hours=1)),
            rec("zz-first", "extend", incarnation="c1", after="c1", expires_at=T0 + timedelta(hours=8)),
            rec("aa-second", "extend", incarnation="c1", after="zz-first", expires_at=T0 + timedelta(hours=2)),
        ]
    )
    assert [e.name for e in found["a"].extends] == ["zz-first", "aa-second"]
    assert found["a"].expires_at == T0 + timedelta(hours=2)


def test_an_extend_after_a_deploy_in_the_same_second_is_ordered_by_the_chain_through_the_deploy() -> None:
    """Extends and deploys are links of one chain: an extend that followed a deploy comes after the extend
    the deploy followed, whatever the names say."""
    found = fold(
        [
            rec("c1", "create", expires_at=T0 + timedelta(hours=1)),
            rec("zz-first", "extend", incarnation="c1", after="c1", expires_at=T0 + timedelta(hours=8)),
            rec("mm-deploy", "deploy", incarnation="c1", after="zz-first"),
            rec("aa-third", "extend", incarnation="c1", after="mm-deploy", expires_at=T0 + timedelta(hours=2)),
        ]
    )
    env = found["a"]
    assert [e.name for e in env.extends] == ["zz-first", "aa-third"]
    assert [r.name for r in env.changes] == ["zz-first", "mm-deploy", "aa-third"]
    assert env.expires_at == T0 + timedelta(hours=2)
    assert env.latest.name == "aa-third"


def test_a_destroy_ends_the_create_it_names_even_in_the_same_second_as_a_new_create() -> None:
    records = [
        rec("c-old", "create", owner="U1", expires_at=T0 + timedelta(hours=4)),
        rec("d1", "destroy", incarnation="c-old", after="c-old", phase="Succeeded"),
        rec("c-new", "create", owner="U2", after="c-old", expires_at=T0 + timedelta(hours=4)),
    ]
    for order in (records, list(reversed(records))):
        env = fold(order)["a"]
        assert env.create.name == "c-new" and env.owner == "U2"
        assert env.state(T0) == "live" and env.destroy is None


def test_a_pending_destroy_is_destroying_and_a_failed_one_leaves_it_standing() -> None:
    base = rec("c1", "create", expires_at=T0 + timedelta(hours=4))
    pending = fold([base, rec("d1", "destroy", incarnation="c1", phase="Running")])["a"]
    assert pending.state(T0) == "destroying" and not pending.is_live(T0)
    failed = fold([base, rec("d1", "destroy", incarnation="c1", phase="Failed")])["a"]
    assert failed.state(T0) == "live"
    done = fold([base, rec("d1", "destroy", incarnation="c1", phase="Succeeded")])["a"]
    assert done.state(T0) == "destroyed"


def test_a_failed_create_and_unrelated_workflows() -> None:
    found = fold(
        [
            rec("c1", "create", phase="Error"),
            rec("d9", "destroy", env="orphan"),  # no create on record: nothing to show
            rec("e9", "extend", incarnation="someone-else"),
        ]
    )
    assert set(found) == {"a"}
    assert found["a"].state(T0) == "failed" and found["a"].extends == ()


def workflow(name: str, labels: dict[str, str], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-11-28T10:00:00Z", "labels": labels},
        "spec": {"arguments": {"parameters": [{"name": "expires_at", "value": "2026-11-28T14:00:00Z"}]}},
        "status": status,
        "padding": "x" * 5000,  # full Workflow objects are large; the reader keeps only the facts
    }


LABELS = {"envbot.dev/env": "a", "envbot.dev/action": "create", "envbot.dev/requested-by": "U1"}


def test_the_list_reader_parses_items_as_they_arrive_in_any_split() -> None:
    items = [workflow(f"wf-{i}", LABELS, phase="Succeeded") for i in range(5)]
    items.append({"metadata": {"name": "not-envbots", "labels": {}}})
    text = json.dumps(items, indent=2)
    for size in (1, 7, 4096, len(text)):
        reader = WorkflowListReader()
        for start in range(0, len(text), size):
            reader.feed(text[start : start + size])
        records = reader.finish()
        assert [r.name for r in records] == [f"wf-{i}" for i in range(5)]
        assert records[0].owner == "U1" and records[0].phase == "Succeeded"
        assert records[0].expires_at == datetime(2026, 11, 28, 14, tzinfo=UTC)


@pytest.mark.parametrize(
    "output", ["", "null", "{}", "No workflows found", "[1, 2]", '[{"a": 1}', '[{"a": 1}] x', "[,]"]
)
def test_output_that_is_not_a_list_of_workflows_fails_closed(output: str) -> None:
    reader = WorkflowListReader()
    with pytest.raises(NotAWorkflowList):
        reader.feed(output)
        reader.finish()


def test_an_empty_list_is_a_fact() -> None:
    reader = WorkflowListReader()
    reader.feed("[]\n")
    assert reader.finish() == []


def test_workflow_detail_names_the_failing_step() -> None:
    item = workflow("wf", LABELS, phase="Failed", message="child failed")
    item["status"]["nodes"] = {
        "wf": {"id": "wf", "type": "Steps", "phase": "Failed", "message": "child failed"},
        "wf-1": {
            "id": "wf-1",
            "type": "Pod",
            "displayName": "create",
            "phase": "Failed",
            "finishedAt": "2026-11-28T10:00:05Z",
            "message": "envbot: namespace a exists and is not managed by envbot",
        },
    }
    detail = workflow_detail(item)
    assert detail.failed_step is not None and detail.failed_step.name == "create"
    assert "not managed by envbot" in detail.failed_step.message
    assert detail.record == workflow_record(item)


def test_views_share_an_inflight_read_and_decisions_never_do() -> None:
    calls: list[Scope] = []
    gate = threading.Event()

    class SlowHistory:
        namespace = "argo"
        dry_run = False

        def history(self, scope: Scope) -> list[WorkflowRecord]:
            calls.append(scope)
            gate.wait(5)
            return [rec("c1", "create", expires_at=T0 + timedelta(hours=1))]

    reader = HistoryReader(SlowHistory())  # type: ignore[arg-type]
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(reader.environments(Scope(), view=True))) for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1 and len(results) == 5
    reader.environments(Scope(owner="U1"))
    reader.environments(Scope(owner="U1"))
    assert len(calls) == 3
