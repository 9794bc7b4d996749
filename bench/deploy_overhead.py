"""How long a create takes beyond the deploy itself (docs/performance.md).

Runs the create workflow's two steps as Argo would (tests/execution_plane.py renders them) with the
real kubectl and git against the Kubernetes API stand-in and its rollout controller, deploying the
example service (examples/echo) from a local git repository. Side by side, in the same run:

- naive: what a person would type: `kubectl apply -k` of the same kustomization, then
  `kubectl wait --for=condition=Available` on its Deployment;
- envbot's deploy step: fetch the ref, write the wrapping kustomization, render and check every
  object, `kubectl apply -k`, then poll readiness (and reasons) every ENVBOT_POLL_SECONDS;
- envbot's namespace step (namespace, quota, limits, network policies, the deployer's RoleBinding).

The rollout controller makes the Deployment Available `--rollout` seconds after it is applied, a
stand-in for the image pull and start-up a real cluster spends. Usage:

    .venv/bin/python bench/deploy_overhead.py [--runs 5] [--rollout 1.0] [--poll 2]
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.execution_plane import CREATE, SERVICES, SETTINGS, render, run_script, service_account
from tests.fakes.kube_api import FakeKubeApi, kubectl_env, kubectl_path
from tests.fakes.rollout import RolloutController

ROOT = Path(__file__).resolve().parent.parent
GIT = shutil.which("git") or "git"


def repository(folder: Path) -> Path:
    repo = folder / "repo"
    shutil.copytree(ROOT / "examples/echo", repo / "deploy/echo")
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "b"}
    env |= {"GIT_COMMITTER_EMAIL": "b@example.com", "HOME": str(folder), "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "echo"]):
        subprocess.run([GIT, "-C", str(repo), *args], env=env, check=True)
    return repo


def recipe(repo: Path) -> dict[str, str]:
    keys = {"kind": "kustomize", "repo": f"file://{repo}", "path": "deploy/echo", "ref": "main"}
    keys |= {"images": "hashicorp/http-echo", "tag": "1.0", "host": "{env}.preview.example.com", "timeout": "60"}
    return SERVICES | {f"echo.recipe.{k}": v for k, v in keys.items()}


def step(
    api: FakeKubeApi, folder: Path, name: str, params: dict[str, str], services: dict[str, str], poll: float
) -> float:
    user = service_account(CREATE, name)
    base = kubectl_env(api, folder / "home" / user.rsplit(":", 1)[1], user=user)
    base |= {"ENVBOT_POLL_SECONDS": str(poll), "ENVBOT_OUTPUTS": str(folder / "outputs")}
    rendered = render(CREATE, params, SETTINGS, step=name, services=services)
    started = time.monotonic()
    run = run_script(rendered, folder / "pod", base, timeout=120)
    took = time.monotonic() - started
    if run.returncode != 0:
        raise SystemExit(f"step {name} failed: {run.output}")
    return took


def naive(api: FakeKubeApi, folder: Path, namespace: str) -> float:
    env = kubectl_env(api, folder / "home" / "admin")
    kubectl = str(kubectl_path())
    api.add_namespace(namespace)
    started = time.monotonic()
    subprocess.run([kubectl, "apply", "-k", str(ROOT / "examples/echo"), "-n", namespace], env=env, check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run([kubectl, "wait", "--for=condition=Available", "deployment/echo", "-n", namespace,
                    "--timeout=60s"], env=env, check=True, capture_output=True)  # fmt: skip
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rollout", type=float, default=1.0, help="seconds until a Deployment is Available")
    parser.add_argument("--poll", type=float, default=2.0, help="ENVBOT_POLL_SECONDS (the template's default: 2)")
    args = parser.parse_args()
    api = FakeKubeApi().start()
    RolloutController(api, delay=args.rollout).install()
    times: dict[str, list[float]] = {"naive": [], "namespace": [], "deploy": [], "empty": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        services = recipe(repository(folder))
        for i in range(args.runs):
            times["naive"].append(naive(api, folder, f"naive-{i}"))
            params = {"env_name": f"echo-{i}", "service": "echo", "expires_at": "2999-01-01T00:00:00Z",
                      "requested_by": f"U{i:03d}AAAA", "slack_channel": f"C{i:03d}AAAA"}  # fmt: skip
            times["namespace"].append(step(api, folder, "create", params, services, args.poll))
            times["deploy"].append(step(api, folder, "deploy", params, services, args.poll))
            # default.recipe.kind: none (another requester: the settings' per-user limit is 3)
            empty = params | {"env_name": f"none-{i}", "service": "other", "requested_by": f"U{i:03d}BBBB"}
            step(api, folder, "create", empty, services, args.poll)
            times["empty"].append(step(api, folder, "deploy", empty, services, args.poll))
    api.stop()
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.runs} runs, rollout {args.rollout:g} s, readiness poll {args.poll:g} s (medians)")
    print(f"| naive `kubectl apply -k` + `kubectl wait` | {median['naive']:.2f} s |")
    print(f"| envbot deploy step (fetch, render, check, apply, wait) | {median['deploy']:.2f} s |")
    print(f"| envbot deploy step beyond the naive deploy | {median['deploy'] - median['naive']:.2f} s |")
    print(f"| envbot namespace step (namespace, guard rails, RoleBinding) | {median['namespace']:.2f} s |")
    print(f"| deploy step of a service without a recipe | {median['empty']:.2f} s |")
    print(f"| create beyond the deploy itself (namespace step + deploy overhead) | "
          f"{median['namespace'] + median['deploy'] - median['naive']:.2f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
