"""Quotas the execution plane guarantees (docs/adr/0011): the create step counts an owner's and a
channel's live environments under their Argo mutexes and refuses past the limit in envbot-settings.

Script tests run the create template's script with the real kubectl against the Kubernetes API
stand-in; the race tests add tests/fakes/argo_controller.py, which runs every submitted create
workflow under Argo's lock semantics, behind two `envbot serve` processes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.execution_plane import CREATE, SETTINGS, Run, render, run_script, service_account, step_of, template
from tests.fakes.argo_controller import Controller, Mutexes
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.cluster import install
from tests.fakes.kube_api import FakeKubeApi, kubectl_env
from tests.fakes.slack_api import FakeSlack
from tests.replicas import Replica, command_body, signed

FUTURE = "2999-01-01T00:00:00Z"
PAST = "2020-01-01T00:00:00Z"
GOOD = {
    "env_name": "checkout-new",
    "service": "checkout",
    "expires_at": "2999-01-01T00:00:00Z",
    "requested_by": "U111AAA",
    "slack_channel": "C111AAA",
}
LIMITS = SETTINGS | {"max_environments_per_user": "2", "max_environments_per_channel": ""}


@pytest.fixture(autouse=True)
def _installed(api: FakeKubeApi) -> None:
    """RBAC and admission from argo/ judge every request the create step makes."""
    install(api)


def environment(
    api: FakeKubeApi,
    name: str,
    *,
    owner: str = "U111AAA",
    channel: str = "C111AAA",
    expires: str | None = FUTURE,
    instance: str = "envbot",
    terminating: bool = False,
) -> None:
    labels = {
        "app.kubernetes.io/managed-by": "envbot", "envbot.dev/instance": instance, "envbot.dev/env": name,
        "envbot.dev/service": "checkout", "envbot.dev/requested-by": owner, "envbot.dev/channel": channel,
    }  # fmt: skip
    annotations = {"envbot.dev/expires-at": expires} if expires else {}
    api.add_namespace(name, labels, annotations, terminating=terminating)


def create(api: FakeKubeApi, folder: Path, settings: dict[str, str] = LIMITS, **params: str) -> Run:
    env = kubectl_env(api, folder / "home", user=service_account(CREATE))
    return run_script(render(CREATE, GOOD | params, settings), folder / "pod", env)


def created(api: FakeKubeApi) -> list[str]:
    return [r.path for r in api.requests if r.method == "POST" and r.path == "/api/v1/namespaces"]


# --- the count, in the script ------------------------------------------------------------------------------


def test_an_owner_at_the_limit_is_refused_with_the_reason_and_nothing_is_created(
    api: FakeKubeApi, tmp_path: Path
) -> None:
    environment(api, "mine-1")
    environment(api, "mine-2")
    run = create(api, tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "envbot: user U111AAA already has 2 live environments (limit 2): mine-1, mine-2. "
        "Destroy one with /env destroy <name> and try again; nothing was created"
    )
    assert created(api) == [] and api.namespace("checkout-new") is None


def test_only_live_environments_of_this_install_and_owner_count(api: FakeKubeApi, tmp_path: Path) -> None:
    environment(api, "mine-1")
    environment(api, "going", terminating=True)  # being deleted
    environment(api, "expired", expires=PAST)  # expired, waiting for the reaper
    environment(api, "theirs", owner="U222BBB")
    environment(api, "other-install", instance="other")
    run = create(api, tmp_path)
    assert run.returncode == 0, run.output
    assert "user U111AAA has 1 live environments (limit 2)" in run.stdout
    assert api.namespace("checkout-new") is not None


def test_an_unreadable_expiry_counts_as_live(api: FakeKubeApi, tmp_path: Path) -> None:
    environment(api, "mine-1")
    environment(api, "no-expiry", expires=None)
    run = create(api, tmp_path)
    assert run.returncode == 1 and "already has 2 live environments (limit 2): mine-1, no-expiry" in run.stderr


def test_a_retry_converging_its_own_environment_takes_no_new_room(api: FakeKubeApi, tmp_path: Path) -> None:
    environment(api, "mine-1")
    environment(api, "checkout-new")  # the environment this create makes: a retry converges it
    run = create(api, tmp_path)
    assert run.returncode == 0, run.output


def test_the_channel_limit(api: FakeKubeApi, tmp_path: Path) -> None:
    environment(api, "a", owner="U222BBB")
    environment(api, "b", owner="U333CCC", channel="C999ZZZ")
    settings = SETTINGS | {"max_environments_per_user": "", "max_environments_per_channel": "1"}
    run = create(api, tmp_path / "refused", settings)
    assert run.returncode == 1
    assert "envbot: channel C111AAA already has 1 live environments (limit 1): a." in run.stderr
    elsewhere = create(api, tmp_path / "elsewhere", settings, slack_channel="C444DDD")
    assert elsewhere.returncode == 0, elsewhere.output


def test_no_limit_set_counts_nothing_and_a_bad_limit_fails_closed(api: FakeKubeApi, tmp_path: Path) -> None:
    environment(api, "mine-1")
    unset = {k: v for k, v in SETTINGS.items() if not k.startswith("max_environments")}
    run = create(api, tmp_path / "unset", unset)
    assert run.returncode == 0, run.output
    assert not [r for r in api.requests if r.method == "GET" and r.path == "/api/v1/namespaces"]
    for bad in ("three", "-1", "3 ", "1e3"):
        broken = create(api, tmp_path / "bad", SETTINGS | {"max_environments_per_user": bad}, env_name="never")
        assert broken.returncode == 1
        assert (
            "setting 'max_environments_per_user' in ConfigMap envbot-settings must be a whole number" in broken.stderr
        )
        assert api.namespace("never") is None


def test_the_create_step_holds_the_owner_and_channel_mutexes_and_the_workflow_its_environment() -> None:
    step = step_of(CREATE)["synchronization"]["mutexes"]
    assert step == [
        {"name": "envbot-owner-{{workflow.parameters.requested_by}}"},
        {"name": "envbot-channel-{{workflow.parameters.slack_channel}}"},
    ]
    assert template(CREATE)["spec"]["synchronization"]["mutexes"] == [
        {"name": "envbot-env-{{workflow.parameters.env_name}}"}
    ]


# --- the stand-in's lock semantics ------------------------------------------------------------------------


def test_mutexes_exclude_per_name_and_serve_the_oldest_waiter_first() -> None:
    locks = Mutexes()
    order: list[str] = []
    with locks.held(["a"], ("1", "first")):
        waiting = [
            threading.Thread(target=lambda w=w: _hold(locks, ["a", "b"], w, order))
            for w in (("3", "late"), ("2", "early"))
        ]
        for thread in waiting:
            thread.start()
        with locks.held(["c"], ("4", "other")):  # a different name is never blocked
            order.append("other")
        _wait_queued(locks, "a", 2)
    for thread in waiting:
        thread.join()
    assert order == ["other", "early", "late"]
    assert locks.never_shared()


def _hold(locks: Mutexes, names: list[str], waiter: tuple[str, str], order: list[str]) -> None:
    with locks.held(names, waiter):
        order.append(waiter[1])


def _wait_queued(locks: Mutexes, name: str, count: int) -> None:
    with locks._cond:
        locks._cond.wait_for(lambda: len(locks._queues[name]) == count, timeout=30)


# --- 100 racing creates from one user, through two replicas ------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path, fake_argo: FakeArgo, api: FakeKubeApi) -> Iterator[Controller]:
    with Controller(fake_argo, api, tmp_path / "controller", SETTINGS | {"max_environments_per_user": "3"}) as ctl:
        yield ctl


def _replicas(tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack, per_user: int) -> list[Replica]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"quotas:\n  per_user: {per_user}\n")
    return [Replica(tmp_path / f"replica-{i}", fake_argo, fake_slack, ENVBOT_POLICY=str(policy)) for i in range(2)]


def _race(replicas: list[Replica], fake_slack: FakeSlack, n: int) -> list[dict[str, Any]]:
    bodies = [command_body(fake_slack, "create checkout ttl=4h", f"race{i}") for i in range(n)]
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda i: replicas[i % 2].post(bodies[i], signed(bodies[i])).status, range(n)))
    assert statuses == [200] * n
    return [fake_slack.wait_for(f"/response/race{i}", 1, timeout=300)[0].body for i in range(n)]


def _live_namespaces(api: FakeKubeApi, owner: str = "U111AAA") -> list[str]:
    return [
        ns["metadata"]["name"]
        for ns in api.objects("Namespace")
        if (ns["metadata"].get("labels") or {}).get("envbot.dev/requested-by") == owner
    ]


def test_racing_workflows_submitted_by_anyone_give_exactly_the_quota(
    fake_argo: FakeArgo, api: FakeKubeApi, cluster: Controller
) -> None:
    # Not only the bot may submit: whoever does, the create step counts under the owner's mutex.
    fake_argo.seed(
        12,
        params=lambda i: GOOD | {"env_name": f"raced-{i}"},
        labels=lambda i: {"envbot.dev/env": f"raced-{i}", "envbot.dev/action": "create"},
        phase="",
    )
    workflows = cluster.wait_until_all_ended()
    assert len(workflows) == 12
    assert len(_live_namespaces(api)) == 3
    assert [w["status"]["phase"] for w in workflows].count("Succeeded") == 3
    assert cluster.locks.never_shared()


@pytest.mark.timeout(900)  # 100 requests through two bot processes and 100 create scripts on a shared machine
@pytest.mark.parametrize("bot_quota", [3, 1000], ids=["bot-agrees", "bot-lets-everything-through"])
def test_100_racing_creates_from_one_user_on_two_replicas_give_exactly_the_quota(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack, api: FakeKubeApi, cluster: Controller, bot_quota: int
) -> None:
    replicas = _replicas(tmp_path, fake_argo, fake_slack, bot_quota)
    try:
        replies = _race(replicas, fake_slack, 100)
    finally:
        for replica in replicas:
            replica.stop()
    workflows = cluster.wait_until_all_ended()

    assert len(_live_namespaces(api)) == 3  # exactly the quota, however many were submitted
    succeeded = [w for w in workflows if w["status"]["phase"] == "Succeeded"]
    refused = [w for w in workflows if w["status"]["phase"] == "Failed"]
    assert len(succeeded) == 3
    for workflow in refused:  # the plane's refusal carries the reason the failure notice and status show
        # The create step failed; the steps after it (deploying the service) never ran.
        (node,) = [n for n in workflow["status"]["nodes"].values() if n["type"] == "Pod"]
        assert node["phase"] == "Failed" and node["displayName"] == "create"
        assert node["message"].startswith("envbot: user U111AAA already has 3 live environments (limit 3): ")
    assert cluster.locks.never_shared()
    # Every request got exactly one plain answer: submitted, or the bot's own friendly refusal.
    for reply in replies:
        assert "rpc error" not in reply["text"] and "AlreadyExists" not in reply["text"]
    submitted = [r for r in replies if r.get("response_type") == "in_channel"]
    assert len(submitted) == len(workflows)
    if bot_quota == 1000:
        assert len(workflows) == 100 and len(refused) == 97  # only the plane stood in the way
    else:
        assert len(workflows) >= 3
        assert all("live environments (limit 3)" in r["text"] for r in replies if r not in submitted)


def test_a_create_the_plane_refuses_shows_why_in_status(
    tmp_path: Path, fake_argo: FakeArgo, api: FakeKubeApi, http_bot_factory: Any
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("quotas: {per_user: 5}\n")  # the bot's own check lets the second one through
    bot = http_bot_factory(envbot_policy=policy)
    with Controller(fake_argo, api, tmp_path / "plane", SETTINGS | {"max_environments_per_user": "1"}) as plane:
        for name in ("first-one", "second-one"):
            _, path = bot.command(f"create checkout name={name}")
            assert bot.reply(path)["response_type"] == "in_channel"  # submitted: the bot saw room
            plane.wait_until_all_ended()
    assert _live_namespaces(api) == ["first-one"]
    _, path = bot.command("status second-one")
    status = bot.reply(path)["text"]
    assert "envbot: user U111AAA already has 1 live environments (limit 1): first-one." in status
    assert "rpc error" not in status
