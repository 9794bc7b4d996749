"""The execution plane as it was before issue 14 part B, for side-by-side benchmarks.

Reads the reaper and notifier templates and envbot-lib from git at BASELINE (the last main commit
before the change), so the old scripts run unchanged against the same stand-in in the same run.
Needs the repository's git history; without it the benchmarks run the new scripts only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT
from tests.execution_plane import ARGO_NAMESPACE, Rendered, Run

BASELINE = "78b5f57"  # main before "Intent only, inside too" (issue 14 part B)


def _show(path: str, at: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    result = subprocess.run([git, "-C", str(ROOT), "show", f"{at}:{path}"], capture_output=True, text=True, check=False)
    return result.stdout if result.returncode == 0 else None


def libraries(at: str = BASELINE) -> dict[str, str] | None:
    text = _show("argo/config/envbot-lib.yaml", at)
    return None if text is None else dict(yaml.safe_load(text)["data"])


def rendered(name: str, settings: dict[str, str], params: dict[str, str], at: str = BASELINE) -> Rendered | None:
    """The entrypoint script of template `name` at commit `at`, as Argo and the kubelet would render it."""
    text = _show(f"argo/workflowtemplates/{name}.yaml", at)
    if text is None:
        return None
    doc: dict[str, Any] = yaml.safe_load(text)
    spec = doc["spec"]
    declared = {p["name"]: p.get("value") for p in spec.get("arguments", {}).get("parameters", [])} | params
    (step,) = [t for t in spec["templates"] if t["name"] == spec["entrypoint"]]
    script = step["script"]

    def substitute(value: str) -> str:
        value = value.replace("{{workflow.namespace}}", ARGO_NAMESPACE)
        return re.sub(r"\{\{workflow\.parameters\.([-\w]+)\}\}", lambda m: str(declared[m.group(1)]), value)

    env: dict[str, str] = {}
    for variable in script["env"]:
        if "value" in variable:
            env[variable["name"]] = substitute(variable["value"])
        elif variable["valueFrom"]["configMapKeyRef"]["key"] in settings:
            env[variable["name"]] = settings[variable["valueFrom"]["configMapKeyRef"]["key"]]
    return Rendered(substitute(script["source"]), env, list(script["command"]))


def run(rendered: Rendered, folder: Path, base_env: dict[str, str], libs: dict[str, str], timeout: float) -> Run:
    """Like tests.execution_plane.run_script, with the baseline libraries mounted instead."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in libs.items():
        (folder / name).write_text(text)
    (folder / "script.sh").write_text(rendered.source)
    env = rendered.env | base_env | {"ENVBOT_LIB": str(folder / "lib.sh"), "ENVBOT_NOTIFY": str(folder / "notify.sh")}
    if "ENVBOT_REAPED_FILE" in env:
        env["ENVBOT_REAPED_FILE"] = str(folder / "envbot-reaped.json")
    env.setdefault("TMPDIR", str(folder))
    try:
        done = subprocess.run(
            [*rendered.command, str(folder / "script.sh")], env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        return Run(-9, out, "killed at the deadline")
    return Run(done.returncode, done.stdout, done.stderr)
