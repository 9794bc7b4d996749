"""A stand-in for the `argo` CLI, faithful to ../shared/reference/argo-cli-contract.md.

State lives in the directory named by FAKE_ARGO_STATE:
  config.json      {"templates_dir", "namespace", "mode", "delay", "phase"}; re-read on every call
  calls.jsonl      one {"argv", "pid"} line per invocation
  workflows/*.json every submitted Workflow, so `list`/`get` answer from real submissions

Modes: normal, hang (sleeps until killed), empty (exit 0, no output), garbage (exit 0, junk),
unavailable (kube-mode fatal line), forbidden (RBAC denial).
"""

import fcntl
import json
import os
import random
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml
from label_selectors import matches  # run as a script: its folder is on sys.path

STATE = Path(os.environ["FAKE_ARGO_STATE"])
OUTPUTS = ("name", "json", "yaml", "wide")
LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def main(argv: list[str]) -> int:
    config = json.loads((STATE / "config.json").read_text())
    _record(argv)
    time.sleep(float(config.get("delay", 0)))
    mode = config.get("mode", "normal")
    if mode == "hang":
        time.sleep(3600)
    if mode == "unavailable":
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _fail(
            f'time="{stamp}" level=fatal msg="Post \\"https://10.0.0.1:6443/apis/authorization.k8s.io/v1/'
            'selfsubjectaccessreviews\\": dial tcp 10.0.0.1:6443: connect: connection refused"'
        )
    if not argv:
        return _fail("Error: requires a subcommand")
    command, rest = argv[0], argv[1:]
    if command == "version":
        print("argo: v3.7.18")
        return 0
    flags, positional = _parse(rest)
    if command == "submit":
        return _submit(config, mode, flags, positional)
    if command == "list":
        return _list(flags)
    if command == "get":
        return _get(flags, positional)
    return _fail(f'Error: unknown command "{command}" for "argo"')


def _record(argv: list[str]) -> None:
    with (STATE / "calls.jsonl").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(json.dumps({"argv": argv, "pid": os.getpid()}) + "\n")


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def _parse(args: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    aliases = {
        "-n": "--namespace",
        "-p": "--parameter",
        "-l": "-l",
        "-o": "--output",
        "--selector": "-l",
        "--labels": "-l",
    }
    flags: dict[str, list[str]] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            name, _, inline = arg.partition("=")
            name = aliases.get(name, name)
            value = inline if inline else args[i + 1]
            i += 1 if inline else 2
            flags.setdefault(name, []).append(value)
        else:
            positional.append(arg)
            i += 1
    return flags, positional


def _output_error(flags: dict[str, list[str]]) -> int | None:
    output = flags.get("--output", [""])[-1]
    if output and output not in OUTPUTS:
        return _fail(
            f'Error: invalid argument "{output}" for "-o, --output" flag: One of: name|json|yaml|wide\n'
            "Usage:\n  argo submit [FILE... | --from `kind/name] [flags]"
        )
    return None


def _templates(config: dict, namespace: str) -> dict[str, dict]:
    if namespace != config.get("namespace", "argo"):
        return {}
    found = {}
    for path in sorted(Path(config["templates_dir"]).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "WorkflowTemplate":
                found[doc["metadata"]["name"]] = doc
    return found


def _submit(config: dict, mode: str, flags: dict[str, list[str]], positional: list[str]) -> int:
    if (error := _output_error(flags)) is not None:
        return error
    kind, _, name = flags.get("--from", [""])[-1].partition("/")
    if not name:
        return _fail("Error: resource identifier '' is malformed. Should be `kind/name`, e.g. cronwf/hello-world-cwf")
    prefix = "Error: Failed to submit workflow: rpc error: code = "
    if kind not in ("WorkflowTemplate", "workflowtemplate", "workflowtemplates", "wftmpl"):
        return _fail(f"{prefix}InvalidArgument desc = Resource kind '{kind}' is not supported for submitting")
    namespace = flags.get("--namespace", ["default"])[-1]
    template = _templates(config, namespace).get(name)
    if template is None:
        return _fail(f'{prefix}NotFound desc = workflowtemplates.argoproj.io "{name}" not found')
    params = []
    for raw in flags.get("--parameter", []):
        if "=" not in raw:
            return _fail(f"{prefix}Internal desc = expected parameter of the form: NAME=VALUE. Received: {raw}")
        key, value = raw.split("=", 1)
        params.append({"name": key, "value": value})
    given = {p["name"] for p in params}
    for declared in template["spec"].get("arguments", {}).get("parameters", []):
        if "value" not in declared and "valueFrom" not in declared and declared["name"] not in given:
            missing = declared["name"]
            return _fail(
                f"{prefix}InvalidArgument desc = spec.arguments.{missing}.value or "
                f"spec.arguments.{missing}.valueFrom is required"
            )
    labels = {"workflows.argoproj.io/workflow-template": name}
    for term in (flags.get("-l", [""])[-1]).split(","):
        if not term:
            continue
        parts = term.split("=")
        if len(parts) != 2:
            return _fail(
                f"{prefix}Internal desc = expected labels of the form: NAME1=VALUE2,NAME2=VALUE2. "
                f"Received: {term}: unexpected label spec: {term}"
            )
        if len(parts[1]) > 63 or not LABEL_VALUE.fullmatch(parts[1]):
            return _fail(
                f'{prefix}InvalidArgument desc = Workflow.argoproj.io "" is invalid: metadata.labels: '
                f'Invalid value: "{parts[1]}": a valid label must be an empty string or consist of '
                "alphanumeric characters, '-', '_' or '.'"
            )
        labels[parts[0]] = parts[1]
    if mode == "forbidden":
        return _fail(
            f"{prefix}PermissionDenied desc = workflows.argoproj.io is forbidden: User "
            f'"system:serviceaccount:envbot:envbot" cannot create resource "workflows" in "{namespace}"'
        )
    workflow_name = f"{name}-" + "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
    workflow = {
        "metadata": {
            "name": workflow_name,
            "generateName": f"{name}-",
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "labels": labels,
        },
        "spec": {"arguments": {"parameters": params}, "workflowTemplateRef": {"name": name}},
        "status": {"startedAt": None, "finishedAt": None} | ({"phase": config["phase"]} if config.get("phase") else {}),
    }
    (STATE / "workflows").mkdir(exist_ok=True)
    (STATE / "workflows" / f"{workflow_name}.json").write_text(json.dumps(workflow))
    if mode == "empty":
        return 0
    if mode == "garbage":
        print("Name:                " + workflow_name + "\nNamespace:           " + namespace)
        return 0
    output = flags.get("--output", [""])[-1]
    print(json.dumps(workflow, indent=4) if output == "json" else workflow_name)
    return 0


def _workflows(namespace: str) -> list[dict]:
    folder = STATE / "workflows"
    items = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.exists() else []
    return [w for w in items if w["metadata"]["namespace"] == namespace]


def _list(flags: dict[str, list[str]]) -> int:
    if (error := _output_error(flags)) is not None:
        return error
    selector = flags.get("-l", [""])[-1]
    items = [w for w in _workflows(flags.get("--namespace", ["default"])[-1]) if _matches(selector, w)]
    items.sort(key=lambda w: w["metadata"]["creationTimestamp"], reverse=True)
    output = flags.get("--output", [""])[-1]
    if output == "json":
        print(json.dumps(items, indent=2))
    elif not items:
        print("No workflows found")
    else:
        print("\n".join(w["metadata"]["name"] for w in items))
    return 0


def _get(flags: dict[str, list[str]], positional: list[str]) -> int:
    for workflow in _workflows(flags.get("--namespace", ["default"])[-1]):
        if workflow["metadata"]["name"] == positional[0]:
            print(json.dumps(workflow, indent=4))
            return 0
    namespace = flags.get("--namespace", ["default"])[-1]
    return _fail(
        f'Error: rpc error: code = NotFound desc = workflows.argoproj.io "{positional[0]}" not found in {namespace}'
    )


def _matches(selector: str, workflow: dict) -> bool:
    return matches(selector, workflow["metadata"].get("labels", {}))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
