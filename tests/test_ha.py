"""Highly available by default: two replicas behind a Service (HTTP) or sharing Socket Mode, and a rolling
restart that loses no follow-up. Real `envbot serve` processes against one argo and one Slack stand-in."""

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import APP_TOKEN, ROOT, http_request
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.slack_api import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.replicas import Replica, command_body, signed
from tests.test_manifests import documents

# Every command's argo call takes a while, so a restart always finds some in flight.
ENV = {"SHUTDOWN_GRACE": "30", "SHUTDOWN_DRAIN": "5", "ARGO_CONCURRENCY": "2", "ENV_VIEW_REFRESH": "600"}


def test_the_deployment_is_highly_available_by_default() -> None:
    (deployment,) = documents(ROOT / "manifests/bot/deployment.yaml")
    (budget,) = documents(ROOT / "manifests/bot/pdb.yaml")
    spec, pod = deployment["spec"], deployment["spec"]["template"]["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == spec["selector"] and budget["metadata"]["namespace"] == "envbot"
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    for constraint in spread.values():
        assert constraint["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Drain, then the grace for argo calls, must fit before the kubelet's SIGKILL.
    assert float(env["SHUTDOWN_DRAIN"]) + float(env["SHUTDOWN_GRACE"]) + 10 <= pod["terminationGracePeriodSeconds"]
    kustomization = (ROOT / "manifests/bot/kustomization.yaml").read_text()
    assert "- pdb.yaml" in kustomization


class Service:
    """What a Kubernetes Service does for HTTP mode: send each request to one ready endpoint, in turn."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self._turn = 0

    def endpoints(self) -> list[Replica]:
        ready = []
        for replica in self.replicas:
            try:
                if http_request(f"{replica.url}/readyz").status == 200:
                    ready.append(replica)
            except OSError:
                pass
        return ready

    def post(self, body: str) -> Replica:
        endpoints = self.endpoints()
        assert endpoints, "no ready endpoint"
        replica = endpoints[self._turn % len(endpoints)]
        self._turn += 1
        assert replica.post(body, signed(body)).status == 200
        return replica


def begin_stop(replica: Replica) -> subprocess.Popen[str]:
    """SIGTERM, as the kubelet sends it, without waiting: the replica drains while others serve."""
    assert replica.proc is not None
    replica.proc.send_signal(signal.SIGTERM)
    return replica.proc


def wait_unready(replica: Replica) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if http_request(f"{replica.url}/readyz").status == 503:
                return
        except OSError:
            return
        assert time.monotonic() < deadline, "the replica never went unready"
        time.sleep(0.02)


def finished(proc: subprocess.Popen[str]) -> str:
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    return err


def all_created(slack: FakeSlack, keys: list[str], argo: FakeArgo) -> None:
    for key in keys:
        (reply,) = slack.wait_for(f"/response/{key}", 1, timeout=120)
        assert "requested environment" in reply.body["text"], (key, reply.body["text"])
    for key in keys:
        assert len(slack.requests(f"/response/{key}")) == 1, key
    assert len({argv[argv.index("--name") + 1] for argv in argo.submits() if "--name" in argv}) == len(keys)


@pytest.mark.serial
def test_a_rolling_restart_behind_a_service_loses_no_follow_up(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    fake_argo.configure(delays={"submit": 1.0})
    replicas = [Replica(tmp_path / f"r{i}", fake_argo, fake_slack, **ENV) for i in range(2)]
    service, keys = Service(replicas), []
    try:

        def command(i: int, to: Replica | None = None) -> None:
            key = f"roll{i}"
            body = command_body(fake_slack, f"create checkout name=roll-{i}", key, user=f"U{i:04d}ROLL")
            if to is None:
                service.post(body)
            else:  # a request the Service routed here just before it saw the replica go unready
                assert to.post(body, signed(body)).status == 200
            keys.append(key)

        for i in range(6):  # in flight on both replicas
            command(i)
        for old in list(replicas):  # the rollout: one pod at a time, the new one ready before the next goes
            stopping = begin_stop(old)
            wait_unready(old)
            command(len(keys), to=old)  # still served while draining
            for _ in range(3):
                command(len(keys))  # the Service sends everything else to the other replica
            finished(stopping)
            fresh = Replica(old.folder.with_name(old.folder.name + "-next"), fake_argo, fake_slack, **ENV)
            replicas[replicas.index(old)] = fresh
        all_created(fake_slack, keys, fake_argo)
    finally:
        for replica in replicas:
            replica.stop()


@pytest.mark.serial
def test_two_socket_mode_replicas_share_the_load_and_restart_without_losing_a_follow_up(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    server = FakeSocketMode()
    fake_slack.socket_url = server.url
    fake_argo.configure(delays={"submit": 1.0})
    env: dict[str, Any] = ENV | {"SLACK_APP_TOKEN": APP_TOKEN, "SLACK_SIGNING_SECRET": ""}
    replicas = [Replica(tmp_path / f"s{i}", fake_argo, fake_slack, mode="socket", **env) for i in range(2)]
    keys: list[str] = []
    try:
        server.wait_connected(count=2)

        def command(i: int) -> int:
            key = f"sock{i}"
            body = {"command": "/env", "text": f"create checkout name=sock-{i}", "user_id": f"U{i:04d}SOCK",
                    "channel_id": "C0DEV", "team_id": "T111", "response_url": fake_slack.response_url(key),
                    "trigger_id": f"4.2.{key}", "api_app_id": "A111"}  # fmt: skip
            envelope = {"envelope_id": key, "type": "slash_commands", "payload": body, "accepts_response_payload": True}
            keys.append(key)
            connection = server.deliver(envelope)
            assert server.wait_ack(key, timeout=30)  # acknowledged by the replica on that connection
            return connection

        assert {command(i) for i in range(6)} == {0, 1}  # Slack spreads payloads over both connections
        stopping = begin_stop(replicas[0])
        deadline = time.monotonic() + 20
        while len(server.clients) > 1:  # it hands its connection back first
            assert time.monotonic() < deadline, "the stopping replica kept its connection"
            time.sleep(0.02)
        for _ in range(4):
            command(len(keys))  # all to the replica still connected
        finished(stopping)
        replicas[0] = Replica(tmp_path / "s0-next", fake_argo, fake_slack, mode="socket", **env)
        server.wait_connected(count=2)
        all_created(fake_slack, keys, fake_argo)
    finally:
        for replica in replicas:
            replica.stop()
        server.stop()
