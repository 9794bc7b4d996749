"""A minimal Deployment controller and kubelet for the Kubernetes API stand-in.

Install it on a FakeKubeApi and every Deployment that is created or whose spec changes is rolled
out shortly afterwards (on a timer, like the real controllers, never inside the request):

- the namespace's ResourceQuota is checked first (requests.cpu, requests.memory, pods; container
  requests, else the LimitRange's defaults). Over quota: no pods, and the Deployment gets the
  ReplicaFailure condition with the API server's "exceeded quota" message;
- otherwise its old pods are replaced by `replicas` new ones whose containers are running and
  ready, then the Deployment reports Available. An image listed in `missing` leaves its container
  waiting in ImagePullBackOff (and the Deployment unavailable); one listed in `crashing` restarts
  in CrashLoopBackOff, and its log (GET pods/<name>/log, `previous` too) is the given lines.

What it does not model: ReplicaSets, rolling-update surge, probes, events, other workload kinds.
"""

from __future__ import annotations

import copy
import hashlib
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.kube_api import FakeKubeApi, Resource, now_rfc3339, resource_for

DEPLOYMENTS = resource_for("Deployment")
PODS = resource_for("Pod")
QUOTAS = resource_for("ResourceQuota")
LIMITS = resource_for("LimitRange")
_OWNER_LABEL = "standin.envbot.dev/deployment"  # how the stand-in finds a Deployment's pods


@dataclass
class RolloutController:
    api: FakeKubeApi
    delay: float = 0.05  # seconds between a spec change and the rollout
    missing: set[str] = field(default_factory=set)  # images that cannot be pulled
    crashing: dict[str, list[str]] = field(default_factory=dict)  # image -> its log lines
    rollouts: int = 0  # finished rollouts, for tests that wait for state

    def install(self) -> RolloutController:
        self.api.controllers.append(self._observe)
        self.api.pod_log = self._log
        return self

    # --- called by the stand-in with its lock held: schedule only ----------------------------------

    def _observe(
        self, resource: Resource, namespace: str | None, new: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if resource != DEPLOYMENTS or namespace is None:
            return
        if old is not None and old.get("spec") == new.get("spec"):
            return  # a status write (ours) or a metadata change: nothing to roll out
        generation = int(new["metadata"].get("generation", 1))
        timer = threading.Timer(self.delay, self._reconcile, (namespace, new["metadata"]["name"], generation))
        timer.daemon = True
        timer.start()

    def _log(self, namespace: str, name: str, query: dict[str, str]) -> str:
        with self.api._cond:
            pod = self.api._store.get((PODS, namespace, name))
        if pod is None:
            return ""
        wanted = query.get("container") or pod["spec"]["containers"][0]["name"]
        image = next((c.get("image", "") for c in pod["spec"]["containers"] if c["name"] == wanted), "")
        lines = self.crashing.get(image, [f"listening on :5678 ({image})"])
        tail = int(query.get("tailLines") or 0)
        shown = lines[-tail:] if tail > 0 else lines
        return "".join(f"{line}\n" for line in shown)

    # --- the controller's work, on its own thread ---------------------------------------------------

    def _reconcile(self, namespace: str, name: str, generation: int) -> None:
        with self.api._cond:
            deployment = self.api._store.get((DEPLOYMENTS, namespace, name))
            if deployment is None or int(deployment["metadata"].get("generation", 1)) != generation:
                return  # deleted, or a newer spec has its own rollout coming
            for key in [k for k, pod in self.api._store.items() if k[0] == PODS and k[1] == namespace]:
                if self.api._store[key]["metadata"].get("labels", {}).get(_OWNER_LABEL) == name:
                    self.api._remove(PODS, namespace, key[2])
            deployment = copy.deepcopy(deployment)
            replicas = int(deployment["spec"].get("replicas", 1))
            template = deployment["spec"].get("template") or {}
            over = self._over_quota(namespace, template, replicas)
            if over:
                self._status(deployment, generation, replicas, 0, over)
            else:
                ready = sum(self._pod(namespace, name, template, i) for i in range(replicas))
                self._status(deployment, generation, replicas, ready, None)
            self.rollouts += 1
            self.api._cond.notify_all()

    def _pod(self, namespace: str, deployment: str, template: dict[str, Any], index: int) -> bool:
        """Create one pod as the kubelet would report it; True if all its containers are ready."""
        spec = copy.deepcopy(template.get("spec") or {})
        digest = hashlib.sha256(repr(spec).encode()).hexdigest()[:10]
        labels = dict((template.get("metadata") or {}).get("labels") or {}) | {_OWNER_LABEL: deployment}
        statuses, ready = [], True
        for container in spec.get("containers", []):
            image = container.get("image", "")
            status: dict[str, Any] = {"name": container["name"], "image": image, "ready": False, "restartCount": 0}
            if image in self.missing:
                message = f'Back-off pulling image "{image}": not found'
                status["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
            elif image in self.crashing:
                status["restartCount"] = 3
                status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting"}}
                status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error"}}
            else:
                status["ready"] = True
                status["state"] = {"running": {"startedAt": now_rfc3339()}}
            ready = ready and status["ready"]
            statuses.append(status)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{deployment}-{digest}-{secrets.token_hex(3)}{index}",
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{deployment}-{digest}"}],
            },
            "spec": spec,
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "containerStatuses": statuses,
            },
        }
        self.api.put(pod)
        return ready

    def _status(
        self, deployment: dict[str, Any], generation: int, replicas: int, ready: int, failure: str | None
    ) -> None:
        available = ready >= replicas
        conditions = [
            {
                "type": "Available",
                "status": "True" if available else "False",
                "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if available
                else "Deployment does not have minimum availability.",
            },
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "progressing"},
        ]
        if failure:
            conditions.append(
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": failure}
            )
        deployment["status"] = {
            "observedGeneration": generation,
            "replicas": 0 if failure else replicas,
            "updatedReplicas": 0 if failure else replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": replicas - ready,
            "conditions": conditions,
        }
        self.api.put(deployment)

    # --- quota: the ResourceQuota admission plugin, for one Deployment's pods -----------------------

    def _over_quota(self, namespace: str, template: dict[str, Any], replicas: int) -> str | None:
        quota = self.api._store.get((QUOTAS, namespace, "envbot-quota"))
        if quota is None:
            return None
        hard = (quota.get("spec") or {}).get("hard") or {}
        defaults = self._default_requests(namespace)
        wanted = {"pods": 1000.0, "requests.cpu": 0.0, "requests.memory": 0.0}
        for container in (template.get("spec") or {}).get("containers", []):
            requests = ((container.get("resources") or {}).get("requests") or {}) or defaults
            wanted["requests.cpu"] += _quantity(requests.get("cpu", "0"))
            wanted["requests.memory"] += _quantity(requests.get("memory", "0"))
        used = {key: 0.0 for key in wanted}
        for (res, ns, _), pod in self.api._store.items():
            if res == PODS and ns == namespace:
                used["pods"] += 1000.0
                for container in pod["spec"].get("containers", []):
                    requests = (container.get("resources") or {}).get("requests") or defaults
                    used["requests.cpu"] += _quantity(requests.get("cpu", "0"))
                    used["requests.memory"] += _quantity(requests.get("memory", "0"))
        for _ in range(replicas):  # the ReplicaSet creates pods one by one; the first refused one fails it
            for key, per_pod in wanted.items():
                if key in hard and used[key] + per_pod > _quantity(hard[key]):
                    name = f"{(template.get('metadata') or {}).get('name', 'pod')}-{secrets.token_hex(3)}"
                    return (
                        f'pods "{name}" is forbidden: exceeded quota: envbot-quota, requested: {key}={_show(per_pod)}, '
                        f"used: {key}={_show(used[key])}, limited: {key}={hard[key]}"
                    )
                used[key] += per_pod
        return None

    def _default_requests(self, namespace: str) -> dict[str, str]:
        limits = self.api._store.get((LIMITS, namespace, "envbot-limits"))
        for item in ((limits or {}).get("spec") or {}).get("limits", []):
            if item.get("type") == "Container":
                return dict(item.get("defaultRequest") or {})
        return {}


_UNITS = {"m": 1.0, "": 1000.0, "k": 1e6, "M": 1e9, "G": 1e12, "Ki": 1024e3, "Mi": 1024**2 * 1e3, "Gi": 1024**3 * 1e3}


def _quantity(text: str) -> float:
    """A quantity in thousandths of its unit (250m -> 250, 2 -> 2000, 1Gi -> 1073741824000)."""
    match = re.fullmatch(r"([0-9.]+)(m|k|M|G|Ki|Mi|Gi)?", str(text))
    if match is None:
        raise ValueError(f"quantity {text!r} is not understood by the stand-in")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]


def _show(milli: float) -> str:
    return f"{int(milli)}m" if milli % 1000 else str(int(milli // 1000))
