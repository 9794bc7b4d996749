"""Exactly once across replicas and restarts: one Slack request, one workflow (docs/adr/0011).

The workflow is named after the request (`argo submit --name`), so the execution plane, not a
replica's memory, refuses a second one; a duplicate reads the first and answers as it did.
"""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from slackbot.argo_cli import ArgoCliOrchestrator
from slackbot.errors import OrchestratorError
from slackbot.idempotency import request_key, workflow_name
from slackbot.spec import DestroyRequest, EnvironmentSpec
from tests.conftest import APP_TOKEN, HttpBot, block_actions
from tests.execution_plane import ARGO_NAMESPACE
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.slack_api import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.replicas import Replica, command_body, signed
from tests.test_socket_mode import envelope as socket_envelope
from tests.test_surfaces import submission as form_submission

CREATE = "env-create-template"


def spec(key: str | None, env: str = "checkout-demo") -> EnvironmentSpec:
    return EnvironmentSpec(
        env_name=env,
        service="checkout",
        expires_at=datetime(2026, 11, 28, 15, tzinfo=UTC),
        requested_by="U111AAA",
        slack_channel="C111AAA",
        request=key,
    )


@pytest.fixture
def orchestrator(fake_argo: FakeArgo) -> ArgoCliOrchestrator:
    return ArgoCliOrchestrator(str(fake_argo.bin), ARGO_NAMESPACE, timeout=30)


# --- the adapter: --name, AlreadyExists, and the proof that the earlier workflow is this request's ------


def test_a_request_submitted_twice_is_one_workflow_and_the_second_gets_the_first(
    orchestrator: ArgoCliOrchestrator, fake_argo: FakeArgo
) -> None:
    key = request_key("1337.42.first")
    first = orchestrator.create(spec(key))
    second = orchestrator.create(spec(key))
    assert first.workflow_name == second.workflow_name == workflow_name(CREATE, key)
    assert first.earlier is None
    assert second.earlier is not None
    assert (second.earlier.name, second.earlier.env_name, second.earlier.request) == (
        first.workflow_name,
        "checkout-demo",
        key,
    )
    assert [w["metadata"]["name"] for w in fake_argo.workflows()] == [first.workflow_name]
    (refused,) = [c for c in fake_argo.calls() if c[0] == "get"]  # the collision, then one read of the first
    assert refused[1] == first.workflow_name


def test_a_different_request_is_a_different_workflow(orchestrator: ArgoCliOrchestrator, fake_argo: FakeArgo) -> None:
    one = orchestrator.create(spec(request_key("1337.42.a"), "one"))
    two = orchestrator.create(spec(request_key("1337.42.b"), "two"))
    assert one.workflow_name != two.workflow_name
    assert len(fake_argo.workflows()) == 2


def test_a_workflow_with_the_name_that_is_not_this_requests_is_refused_plainly(
    orchestrator: ArgoCliOrchestrator, fake_argo: FakeArgo
) -> None:
    key = request_key("1337.42.squatted")
    name = workflow_name(CREATE, key)
    labels = {
        "app.kubernetes.io/managed-by": "envbot",
        "envbot.dev/env": "checkout-demo",
        "envbot.dev/action": "create",
    }
    fake_argo.add_workflow(name=name, labels=labels)  # someone else's, without this request's key
    with pytest.raises(OrchestratorError) as refused:
        orchestrator.create(spec(key))
    assert (
        f"already has a workflow named {name} that envbot did not submit for this request" in refused.value.user_message
    )
    assert "rpc error" not in refused.value.user_message and "AlreadyExists" not in refused.value.user_message
    # Another action's workflow under a request's key is not this request's either.
    destroy_key = request_key("1337.42.other")
    fake_argo.add_workflow(
        name=workflow_name("env-destroy-template", destroy_key),
        labels=labels | {"envbot.dev/request": request_key("1337.42.elsewhere")},
        template="env-destroy-template",
    )
    with pytest.raises(OrchestratorError):
        orchestrator.destroy(DestroyRequest(env_name="checkout-demo", requested_by="U111AAA", request=destroy_key))


def test_without_a_request_key_argo_generates_the_name(orchestrator: ArgoCliOrchestrator, fake_argo: FakeArgo) -> None:
    orchestrator.create(spec(None))
    (submit,) = fake_argo.submits()
    assert "--name" not in submit


def test_names_and_keys_are_valid_kubernetes_names_and_labels() -> None:
    for template in ("env-create-template", "env-extend-template", "env-destroy-template"):
        for trigger in ("1337.42.x", "9" * 200, "ünïcode", ""):
            key = request_key(trigger)
            name = workflow_name(template, key)
            assert len(name) <= 63 and name == name.lower() and name.replace("-", "").isalnum()
            assert len(key) == 32
    assert request_key("a") != request_key("b")


# --- two `envbot serve` processes against one argo stand-in ----------------------------------------------


@pytest.fixture
def replicas(tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack) -> list[Replica]:
    started = [Replica(tmp_path / f"replica-{i}", fake_argo, fake_slack) for i in range(2)]
    yield started
    for replica in started:
        replica.stop()


def _deliver_to_all(replicas: list[Replica], body: str, headers: dict[str, str]) -> list[int]:
    with ThreadPoolExecutor(len(replicas)) as pool:
        return [post.status for post in pool.map(lambda r: r.post(body, headers), replicas)]


def test_one_signed_command_delivered_to_both_replicas_and_after_a_restart_is_one_environment(
    replicas: list[Replica], fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    body = command_body(fake_slack, "create checkout ttl=4h", "twice")
    headers = signed(body)
    assert _deliver_to_all(replicas, body, headers) == [200, 200]
    first, second = (r.body for r in fake_slack.wait_for("/response/twice", 2))

    (workflow,) = fake_argo.workflows()
    name = workflow["metadata"]["name"]
    assert name == workflow_name(CREATE, request_key("1337.42.twice"))
    env = workflow["metadata"]["labels"]["envbot.dev/env"]
    for reply in (first, second):  # both deliveries get the first one's answer, never a raw conflict
        assert reply["response_type"] == "in_channel"
        assert f"`{env}`" in reply["text"] and f"`{name}`" in reply["text"]
        assert "AlreadyExists" not in reply["text"] and "rpc error" not in reply["text"]
    assert first["text"] == second["text"]

    # A restart forgets every in-memory window; the replay still maps to the same workflow.
    replicas[0].restart()
    assert replicas[0].post(body, headers).status == 200
    third = fake_slack.wait_for("/response/twice", 3)[2].body
    assert third["text"] == first["text"]
    assert len(fake_argo.workflows()) == 1
    submits = fake_argo.submits()
    assert all(s[s.index("--name") + 1] == name for s in submits)


def test_one_button_click_delivered_to_both_replicas_destroys_once(
    replicas: list[Replica], fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    body = command_body(fake_slack, "create checkout ttl=4h name=click-demo", "made")
    assert replicas[0].post(body, signed(body)).status == 200
    created = fake_slack.wait_for("/response/made")[0].body
    (create,) = fake_argo.workflows()
    fake_argo.set_phase(create["metadata"]["name"], "Succeeded")

    payload = block_actions(created, "Destroy", "U111AAA", "C111AAA", "1.0", fake_slack.response_url("click"), "click")
    click = urlencode({"payload": json.dumps(payload)})
    headers = signed(click)
    assert _deliver_to_all(replicas, click, headers) == [200, 200]
    answers = [r.body for r in fake_slack.wait_for("/response/click", 2)]
    destroys = [w for w in fake_argo.workflows() if w["metadata"]["labels"]["envbot.dev/action"] == "destroy"]
    assert len(destroys) == 1
    name = destroys[0]["metadata"]["name"]
    assert name == workflow_name("env-destroy-template", request_key(payload["trigger_id"]))
    assert answers[0]["text"] == answers[1]["text"] and f"`{name}`" in answers[0]["text"]

    replicas[1].restart()
    assert replicas[1].post(click, headers).status == 200
    assert fake_slack.wait_for("/response/click", 3)[2].body["text"] == answers[0]["text"]
    assert len([w for w in fake_argo.workflows() if w["metadata"]["labels"]["envbot.dev/action"] == "destroy"]) == 1


def test_the_fake_argo_gives_one_name_to_one_of_many_racing_processes(fake_argo: FakeArgo) -> None:
    argv = [
        str(fake_argo.bin), "submit", "--from", f"workflowtemplate/{CREATE}", "-n", ARGO_NAMESPACE,
        "--name", "raced", "-p", "env_name=co-1", "-p", "service=checkout", "-p", "expires_at=2026-11-28T16:00:00Z",
        "-o", "name",
    ]  # fmt: skip
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: subprocess.run(argv, capture_output=True, text=True, timeout=60), range(12)))
    assert sorted(r.returncode for r in results) == [0] + [1] * 11
    for lost in (r for r in results if r.returncode):
        assert lost.stderr == (
            "Error: Failed to submit workflow: rpc error: code = AlreadyExists desc = "
            'workflows.argoproj.io "raced" already exists\n'
        )
    assert [w["metadata"]["name"] for w in fake_argo.workflows()] == ["raced"]


def test_a_duplicate_of_a_request_that_expired_from_memory_answers_from_history(
    replicas: list[Replica], fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    # The first delivery's workflow is in history (here: submitted an hour ago by a replica since gone).
    key = request_key("1337.42.old")
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    fake_argo.add_workflow(
        name=workflow_name(CREATE, key),
        params={"env_name": "old-demo", "service": "checkout", "expires_at": "2999-01-01T00:00:00Z"},
        labels={
            "app.kubernetes.io/managed-by": "envbot", "envbot.dev/env": "old-demo", "envbot.dev/action": "create",
            "envbot.dev/service": "checkout", "envbot.dev/owner": "U111AAA", "envbot.dev/requested-by": "U111AAA",
            "envbot.dev/channel": "C111AAA", "envbot.dev/request": key,
        },
        created=when,
        phase="Succeeded",
    )  # fmt: skip
    body = command_body(fake_slack, "create checkout name=old-demo", "old")
    assert replicas[1].post(body, signed(body)).status == 200
    reply = fake_slack.wait_for("/response/old")[0].body
    assert reply["response_type"] == "in_channel" and "`old-demo`" in reply["text"]
    assert "already exists" not in reply["text"]
    # The replica's view of environments (docs/adr/0010) may not have read it yet, so Argo may refuse the
    # named submit (AlreadyExists) and the answer is read from the first workflow: nothing new either way.
    assert [w["metadata"]["name"] for w in fake_argo.workflows()] == [workflow_name(CREATE, key)]


# --- the refusal path, made deterministic: the first delivery's workflow exists but no read shows it yet ------


def _hidden(labels: dict[str, str]) -> dict[str, str]:
    """Labels of an envbot workflow that scoped reads (managed-by=envbot) do not select: what another
    replica's submit looks like to a read that ran just before it landed."""
    return {k: v for k, v in labels.items() if k != "app.kubernetes.io/managed-by"}


ENV_LABELS = {
    "app.kubernetes.io/managed-by": "envbot", "envbot.dev/env": "hidden-demo", "envbot.dev/service": "checkout",
    "envbot.dev/owner": "U111AAA", "envbot.dev/requested-by": "U111AAA", "envbot.dev/channel": "C111AAA",
}  # fmt: skip


def test_a_create_whose_first_delivery_no_read_shows_is_answered_from_argos_refusal(
    http_bot: HttpBot, fake_argo: FakeArgo
) -> None:
    form, path = http_bot.command_form("create checkout ttl=4h name=hidden-demo")
    key = request_key(form["trigger_id"])
    first = workflow_name(CREATE, key)
    fake_argo.add_workflow(
        name=first,
        params={"env_name": "hidden-demo", "service": "checkout", "expires_at": "2999-01-01T00:00:00Z"},
        labels=_hidden(ENV_LABELS | {"envbot.dev/action": "create", "envbot.dev/request": key}),
    )
    assert http_bot.post(urlencode(form)).status == 200
    reply = http_bot.reply(path)
    assert reply["response_type"] == "in_channel"
    assert "`hidden-demo`" in reply["text"] and f"`{first}`" in reply["text"]
    assert "AlreadyExists" not in reply["text"] and "rpc error" not in reply["text"]
    (submit,) = fake_argo.submits()  # refused by the API server: one attempt, then a read of the first
    assert submit[submit.index("--name") + 1] == first
    assert [w["metadata"]["name"] for w in fake_argo.workflows()] == [first]


def test_an_extend_whose_first_delivery_no_read_shows_is_answered_from_argos_refusal(
    http_bot: HttpBot, fake_argo: FakeArgo
) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = fake_argo.add_workflow(
        params={"env_name": "hidden-demo", "service": "checkout", "expires_at": soon},
        labels=ENV_LABELS | {"envbot.dev/action": "create"},
        phase="Succeeded",
    )
    form, path = http_bot.command_form("extend hidden-demo ttl=2h")
    key = request_key(form["trigger_id"])
    first = workflow_name("env-extend-template", key)
    lineage = {"envbot.dev/create-workflow": created["metadata"]["name"], "envbot.dev/request": key}
    fake_argo.add_workflow(
        "env-extend-template",
        name=first,
        params={"env_name": "hidden-demo", "expires_at": soon},
        labels=_hidden(ENV_LABELS | {"envbot.dev/action": "extend"} | lineage),
    )
    assert http_bot.post(urlencode(form)).status == 200
    reply = http_bot.reply(path)
    assert "extended `hidden-demo`" in reply["text"] and f"`{first}`" in reply["text"], reply["text"]
    assert "AlreadyExists" not in reply["text"]
    extends = [w for w in fake_argo.workflows() if w["metadata"]["labels"]["envbot.dev/action"] == "extend"]
    assert [w["metadata"]["name"] for w in extends] == [first]


def test_one_socket_mode_envelope_seen_by_two_replicas_is_one_environment(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    server = FakeSocketMode()  # send(): every connection gets it, as when Slack redelivers to the other replica
    fake_slack.socket_url = server.url
    replicas = [
        Replica(tmp_path / f"socket-{i}", fake_argo, fake_slack, mode="socket", SLACK_APP_TOKEN=APP_TOKEN)
        for i in range(2)
    ]
    try:
        server.wait_connected(timeout=30, count=2)
        server.send(socket_envelope("twice-1", "create checkout ttl=2h", fake_slack.response_url("sm")))
        first, second = (r.body for r in fake_slack.wait_for("/response/sm", 2))
    finally:
        for replica in replicas:
            replica.stop()
        server.stop()
    (workflow,) = fake_argo.workflows()
    assert workflow["metadata"]["name"] == workflow_name(CREATE, request_key("111.222.twice-1"))
    assert first["text"] == second["text"] and f"`{workflow['metadata']['name']}`" in first["text"]


def test_one_form_submission_delivered_to_both_replicas_is_one_environment(
    replicas: list[Replica], fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    payload = form_submission({"service": "checkout", "ttl": "4h", "channel": "C111AAA"}, user="U111AAA")
    body = urlencode({"payload": json.dumps(payload)})
    headers = signed(body)
    assert _deliver_to_all(replicas, body, headers) == [200, 200]
    first, second = (r.body for r in fake_slack.wait_for("/api/chat.postMessage", 2))
    (workflow,) = fake_argo.workflows()
    name = workflow["metadata"]["name"]
    assert name == workflow_name(CREATE, request_key(f"view:{payload['view']['id']}"))
    assert f"`{name}`" in first["text"] and first["text"] == second["text"]
