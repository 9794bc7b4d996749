"""Issue 18: the bot's namespace admits Slack's ingress path to PORT and the monitoring namespace to OPS_PORT only."""

from pathlib import Path

import yaml

BOT = Path(__file__).resolve().parent.parent / "manifests" / "bot"


def test_only_the_ingress_reaches_the_slack_port_and_only_monitoring_the_ops_port() -> None:
    policy = yaml.safe_load((BOT / "networkpolicy.yaml").read_text())
    deployment = yaml.safe_load((BOT / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()  # it selects the bot's pods
    rules = {rule["ports"][0]["port"]: rule["from"] for rule in policy["spec"]["ingress"]}
    assert set(rules) == {"http", "ops"} and {ports["http"], ports["ops"]} == {int(env["PORT"]), int(env["OPS_PORT"])}
    (slack,) = rules["http"]
    assert slack["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert slack["podSelector"]["matchLabels"]  # the controller's pods, not every pod of that namespace
    (monitoring,) = rules["ops"]
    assert monitoring == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    for probe in ("readinessProbe", "livenessProbe"):  # probes use the ops port, which the flood can't reach
        assert container[probe]["httpGet"]["port"] == "ops"
    kustomization = yaml.safe_load((BOT / "kustomization.yaml").read_text())
    assert "networkpolicy.yaml" in kustomization["resources"]
