"""Reading the execution plane's history: argo list JSON into records, records into environments."""

import io
from datetime import UTC, datetime, timedelta

from slackbot.argo_cli import ArgoCliOrchestrator
from slackbot.console import interactive_lines, plain_text
from slackbot.environments import environments
from slackbot.orchestrator import WorkflowRecord
from slackbot.replies import Reply
from slackbot.spec import DestroyRequest, EnvironmentSpec
from tests.conftest import FakeArgo

T0 = datetime(2026, 11, 28, 10, tzinfo=UTC)


def record(action: str, env: str, seconds: int, **extra: object) -> WorkflowRecord:
    return WorkflowRecord(
        name=f"wf-{action}-{seconds}",
        action=action,
        env_name=env,  # type: ignore[arg-type]
        created_at=T0 + timedelta(seconds=seconds),
        **extra,
    )


def test_history_round_trips_through_the_fake_argo(fake_argo: FakeArgo) -> None:
    argo = ArgoCliOrchestrator(str(fake_argo.bin), "argo", 10)
    spec = EnvironmentSpec(
        env_name="co-1",
        service="checkout",
        expires_at=T0 + timedelta(hours=4),
        requested_by="U1AAA",
        slack_channel="C1AAA",
    )
    created = argo.create(spec)
    argo.create(spec.model_copy(update={"env_name": "co-2", "requested_by": "U2BBB"}))
    destroyed = argo.destroy(DestroyRequest(env_name="co-1", requested_by="U9ZZZ"))

    (mine,) = argo.history(requested_by="U1AAA")
    assert mine == WorkflowRecord(
        name=created.workflow_name,
        action="create",
        env_name="co-1",
        service="checkout",
        requested_by="U1AAA",
        channel="C1AAA",
        created_at=mine.created_at,
        expires_at=T0 + timedelta(hours=4),
    )
    both = argo.history(env_names=("co-1",))
    assert {r.name for r in both} == {created.workflow_name, destroyed.workflow_name}
    assert len(argo.history(env_names=("co-1", "co-2"), action="create")) == 2
    assert fake_argo.calls()[-1][4] == (
        "app.kubernetes.io/managed-by=envbot,envbot.dev/env in (co-1,co-2),envbot.dev/action=create"
    )
    assert argo.version() == "argo: v3.7.18"


def test_environments_fold_latest_create_and_later_destroys() -> None:
    found = environments(
        [
            record("create", "a", 0, requested_by="U1", expires_at=T0 + timedelta(hours=1)),
            record("destroy", "a", 10),
            record("create", "a", 20, requested_by="U2", expires_at=T0 + timedelta(hours=2)),
            record("create", "b", 0, requested_by="U1", phase="Failed"),
            record("create", "c", 5, requested_by="U3", expires_at=T0 + timedelta(minutes=1)),
            record("destroy", "d", 5),
        ]
    )
    assert set(found) == {"a", "b", "c"}
    assert found["a"].owner == "U2" and not found["a"].destroyed and found["a"].is_live(T0)
    assert not found["b"].is_live(T0)  # its create failed
    assert found["c"].is_live(T0) and not found["c"].is_live(T0 + timedelta(minutes=2))  # expired


def test_a_failed_destroy_leaves_the_environment_standing() -> None:
    found = environments([record("create", "a", 0, requested_by="U1"), record("destroy", "a", 10, phase="Failed")])
    assert not found["a"].destroyed and found["a"].is_live(T0)


def test_a_destroy_in_the_same_second_follows_the_create() -> None:
    found = environments([record("destroy", "a", 0), record("create", "a", 0, requested_by="U1")])
    assert found["a"].destroyed


def test_console_text_rendering_and_prompt() -> None:
    reply = Reply(
        text="<@U1> at <!date^1^{time}|2026-11-28 15:00 UTC> in <#C1> by <!subteam^S1>", visibility="in_channel"
    )
    assert plain_text(reply) == "[visible to the channel] @U1 at 2026-11-28 15:00 UTC in #C1 by @S1"
    out = io.StringIO()
    lines = list(interactive_lines(io.StringIO("/env help\ncreate x\nexit\nnever read\n"), out))
    assert lines == ["/env help\n", "create x\n"]
    assert out.getvalue() == "envbot> " * 3
