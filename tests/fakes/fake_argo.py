"""A stand-in for the `argo` CLI v3.7 in kube mode, faithful to ../shared/reference/argo-cli-contract.md and,
where that is silent, to argo-workflows v3.7.18's cmd/argo sources (see tests/test_fake_argo.py).

State lives in one directory, passed in by the stub that argo_handle.FakeArgo writes:
  config.json   re-read on every call; keys below
  calls.jsonl   one {"argv", "pid", "env"} line per call; env is the sorted NAMES of the variables argo got
  workflows.db  SQLite, one row per Workflow with its labels beside the JSON, so `list -l` over thousands of
                workflows decodes only the matches, and concurrent submits from many processes stay consistent

config.json keys (all optional except templates_dir):
  templates_dir, namespace     where WorkflowTemplates come from and the one namespace that has them
  extra_templates              more YAML files holding WorkflowTemplates installed there (the ones an
                               operator creates once, e.g. argo/settings/envbot-recipes.yaml)
  default_namespace            kubeconfig's namespace, used when neither -n nor ARGO_NAMESPACE is given
  mode, modes                  fault (see verb_mode) / per verb ("submit", "list", "get", "version",
                               "template get", "template list", or "template" for both): normal, hang,
                               empty, garbage, null, object, unavailable, forbidden, slow, and
                               notfound-template (no WorkflowTemplates, for submit and the template verbs)
  delay, delays                seconds to sleep before answering, global / per verb ("slow" defaults to 2)
  phase, phases, fail_message  the phase the controller drives a new workflow to (all / per template), and
                               the failed step's message per template
  outputs                      step template name -> {output parameter: value}, {{workflow.parameters.x}}
                               substituted: what a succeeded step reports (e.g. the deploy step's url)
  now                          RFC 3339 instant used as the clock (freezegun cannot reach this process)
  version, server_version      client version (default v3.7.18); server_version means argo-server mode for
                               `version` (adds the argo-server block) and for `list --chunk-size` paging
  user, creator                identity in RBAC errors; token subject that becomes the creator label
"""

import fcntl
import hashlib
import json
import os
import random
import re
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__:
    from .label_selectors import (
        Selector,
        SelectorError,
        aggregate,
        go_quote,
        invalid,
        label_value_errors,
        parse,
        qualified_name_errors,
        requirement,
    )
else:  # run by the stub, which puts this folder on sys.path
    from label_selectors import (  # type: ignore[import-not-found,no-redef]
        Selector,
        SelectorError,
        aggregate,
        go_quote,
        invalid,
        label_value_errors,
        parse,
        qualified_name_errors,
        requirement,
    )

Workflow = dict[str, Any]

CLIENT_VERSION = "v3.7.18"
# Release facts for the version block: `git log -1 v3.7.18` and its go.mod/Dockerfile (golang:1.25.7).
RELEASES = {"v3.7.18": ("2026-08-14T07:11:57Z", "66e32e5cc367f223e2ecf4fbe852b95eaed83034", "go1.25.7")}
PHASE_LABEL = "workflows.argoproj.io/phase"
COMPLETED_LABEL = "workflows.argoproj.io/completed"
TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"
RESUBMITTED_LABEL = "workflows.argoproj.io/resubmitted-from-workflow"
INSTANCE_LABEL = "workflows.argoproj.io/controller-instanceid"
CREATOR_LABEL = "workflows.argoproj.io/creator"
SCHEDULED_ANNOTATION = "workflows.argoproj.io/scheduled-time"
POD_NAME_ANNOTATION = "workflows.argoproj.io/pod-name-format"
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Error")
FINAL = ("Succeeded", "Failed", "Error")
TEMPLATE_KINDS = ("WorkflowTemplate", "workflowtemplate", "workflowtemplates", "wftmpl")
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s utilrand.String, used for generateName
SUBMIT_ERROR = "Failed to submit workflow: "
DEFAULT_USER = "system:serviceaccount:envbot:envbot"
TEMPLATES_INSTALLED = "2026-01-01T00:00:00Z"  # fixed, so it precedes any clock a test pins
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class Exit(Exception):
    """Unwinds to main() with an exit code once the message is printed."""

    def __init__(self, code: int) -> None:
        self.code = code


def fail(message: str, code: int = 1) -> Exit:
    print(message, file=sys.stderr)
    return Exit(code)


# --- time and JSON as Go prints them ---------------------------------------------------------------


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def clock(config: dict[str, Any]) -> datetime:
    """metav1.Time has whole seconds; config "now" pins the clock for tests."""
    if config.get("now"):
        return parse_time(str(config["now"]))
    return datetime.now(UTC).replace(microsecond=0)


def go_json(value: Any, indent: int) -> str:
    """json.MarshalIndent: UTF-8 as is, and the HTML-sensitive characters escaped as Go does."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028")):
        text = text.replace(char, escaped)
    return text.replace("\u2029", "\\u2029")


def go_yaml(value: Any) -> str:
    """sigs.k8s.io/yaml: keys sorted. Scalar quoting is PyYAML's, which can differ in corner cases."""
    import yaml  # imported late: most calls never print YAML and the import costs start-up time

    return str(yaml.safe_dump(value, sort_keys=True, default_flow_style=False, allow_unicode=True))


def log_line(level: str, message: str, config: dict[str, Any]) -> str:
    """A logrus TextFormatter line as the CLI writes it when stderr is not a terminal."""
    return f'time="{rfc3339(clock(config))}" level={level} msg={go_quote(message)}'


# --- the store ------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS workflows (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    finished TEXT,
    labels TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (namespace, name)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('resourceVersion', 1000);
"""


class Store:
    """Workflows in SQLite. Writers take the database lock (BEGIN IMMEDIATE), so a name check and its
    insert are one step even with many `argo submit` processes at once; readers see committed rows only."""

    def __init__(self, state: Path) -> None:
        path = state / "workflows.db"
        fresh = not path.exists()
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA busy_timeout = 60000")
        if fresh:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.executescript(SCHEMA)
        self.db.execute("PRAGMA synchronous = NORMAL")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def write(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def resource_version(self) -> str:
        self.db.execute("UPDATE counters SET value = value + 1 WHERE name = 'resourceVersion'")
        return str(self.db.execute("SELECT value FROM counters WHERE name = 'resourceVersion'").fetchone()[0])

    def exists(self, namespace: str, name: str) -> bool:
        query = "SELECT 1 FROM workflows WHERE namespace = ? AND name = ?"
        return self.db.execute(query, (namespace, name)).fetchone() is not None

    def names(self, namespace: str) -> set[str]:
        return {name for (name,) in self.db.execute("SELECT name FROM workflows WHERE namespace = ?", (namespace,))}

    def insert(self, workflows: list[Workflow]) -> None:
        rows = [_row(w) for w in workflows]
        query = "INSERT INTO workflows (namespace, name, created, finished, labels, body) VALUES (?, ?, ?, ?, ?, ?)"
        self.db.executemany(query, rows)

    def replace(self, workflow: Workflow) -> None:
        namespace, name, created, finished, labels, body = _row(workflow)
        query = "UPDATE workflows SET created = ?, finished = ?, labels = ?, body = ? WHERE namespace = ? AND name = ?"
        self.db.execute(query, (created, finished, labels, body, namespace, name))

    def get(self, namespace: str, name: str) -> Workflow | None:
        query = "SELECT body FROM workflows WHERE namespace = ? AND name = ?"
        row = self.db.execute(query, (namespace, name)).fetchone()
        return json.loads(row[0]) if row else None

    def select(self, namespace: str | None, selector: Selector, *, names_only: bool = False) -> list[Workflow]:
        """Matching workflows in the API server's order (namespace, then name). Only matches are decoded, and
        with names_only only the fields `argo list -o name` asks the server for (list.go nameFields)."""
        where, args = ("WHERE namespace = ?", (namespace,)) if namespace else ("", ())
        columns = "namespace, name, created, finished, labels, " + ("NULL" if names_only else "body")
        query = f"SELECT {columns} FROM workflows {where} ORDER BY namespace, name"  # noqa: S608 - no caller text
        everything = not selector.requirements
        found = []
        for space, name, created, finished, labels, body in self.db.execute(query, args):
            if everything or selector.matches(json.loads(labels)):
                found.append(
                    json.loads(body)
                    if body
                    else {
                        "metadata": {"name": name, "namespace": space, "creationTimestamp": created},
                        "status": {"finishedAt": finished},
                    }
                )
        return found

    def all(self) -> list[Workflow]:
        return [json.loads(body) for (body,) in self.db.execute("SELECT body FROM workflows ORDER BY seq")]


def _row(workflow: Workflow) -> tuple[str, str, str, str | None, str, str]:
    meta, labels = workflow["metadata"], json.dumps(workflow["metadata"].get("labels") or {})
    finished = workflow["status"].get("finishedAt")
    return meta["namespace"], meta["name"], meta["creationTimestamp"], finished, labels, json.dumps(workflow)


# --- WorkflowTemplates ------------------------------------------------------------------------------


def load_templates(config: dict[str, Any], namespace: str) -> dict[str, tuple[dict[str, Any], Path]]:
    import yaml  # see go_yaml

    if namespace != config.get("namespace", "envbot-workflows"):
        return {}
    found: dict[str, tuple[dict[str, Any], Path]] = {}
    paths = [*sorted(Path(config["templates_dir"]).glob("*.yaml")), *map(Path, config.get("extra_templates", []))]
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "WorkflowTemplate":
                found[doc["metadata"]["name"]] = (doc, path)
    return found


def template_object(doc: dict[str, Any], path: Path, namespace: str) -> dict[str, Any]:
    """The WorkflowTemplate as a typed client returns it: no apiVersion/kind, server-set metadata."""
    meta = doc["metadata"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    metadata: dict[str, Any] = {
        "name": meta["name"],
        "namespace": namespace,
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"workflowtemplate/{namespace}/{meta['name']}")),
        "resourceVersion": str(int(digest[:6], 16)),  # stable until the file changes, like the real one
        "generation": 1,
        "creationTimestamp": TEMPLATES_INSTALLED,
    }
    for key in ("labels", "annotations"):
        if meta.get(key):
            metadata[key] = dict(sorted(meta[key].items()))
    return {"metadata": metadata, "spec": doc.get("spec", {})}


# --- the workflow object and the controller's changes to it ------------------------------------------


def new_workflow(
    template: str,
    namespace: str,
    params: list[dict[str, str]],
    labels: dict[str, str],
    *,
    name: str = "",
    generate_name: str | None = None,
    annotations: dict[str, str] | None = None,
    entrypoint: str = "",
    service_account: str = "",
) -> Workflow:
    """What common.NewWorkflowFromWorkflowTemplate plus ApplySubmitOpts build, before the API server."""
    metadata: dict[str, Any] = {}
    if name:
        metadata["name"] = name
    metadata["generateName"] = f"{template}-" if generate_name is None else generate_name
    if not metadata["generateName"]:
        del metadata["generateName"]
    metadata["namespace"] = namespace
    metadata["creationTimestamp"] = None  # metav1.Time zero value marshals as null
    metadata["labels"] = dict(sorted(labels.items()))
    if annotations:
        metadata["annotations"] = dict(sorted(annotations.items()))
    spec: dict[str, Any] = {}
    if entrypoint:
        spec["entrypoint"] = entrypoint
    spec["arguments"] = {"parameters": params} if params else {}
    if service_account:
        spec["serviceAccountName"] = service_account
    spec["workflowTemplateRef"] = {"name": template}
    return {"metadata": metadata, "spec": spec, "status": {"startedAt": None, "finishedAt": None}}


def admit(workflow: Workflow, name: str, created: datetime, resource_version: str | None) -> Workflow:
    """What the API server adds on create (a dry run gets all but the resourceVersion)."""
    old = workflow["metadata"]
    meta: dict[str, Any] = {"name": name}
    if old.get("generateName"):
        meta["generateName"] = old["generateName"]
    meta["namespace"] = old["namespace"]
    meta["uid"] = str(uuid.uuid4())
    if resource_version:
        meta["resourceVersion"] = resource_version
    meta["generation"] = 1
    meta["creationTimestamp"] = rfc3339(created)
    for key in ("labels", "annotations"):
        if old.get(key):
            meta[key] = old[key]
    return {**workflow, "metadata": meta}


def merged_parameters(workflow: Workflow, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The template's parameters with the submitted values over them, extra submitted ones after."""
    given = {p["name"]: p for p in workflow["spec"].get("arguments", {}).get("parameters", [])}
    merged = []
    for declared in spec.get("arguments", {}).get("parameters", []):
        merged.append({**declared, **given.pop(declared["name"], {})})
    return merged + list(given.values())


def reconcile(
    workflow: Workflow,
    phase: str,
    at: datetime,
    *,
    template: dict[str, Any] | None = None,
    message: str | None = None,
    node_message: str | None = None,
    outputs: dict[str, dict[str, str]] | None = None,
    failed_step: str | None = None,
) -> Workflow:
    """The workflow controller's view of a one-step workflow moving to `phase` at `at`: the phase and
    completed labels, workflowMetadata labels and the stored template spec on its first pass,
    status.nodes with one Pod node, start/finish times and messages (operator.go markWorkflowPhase)."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
    meta, old = workflow["metadata"], workflow["status"]
    labels = meta.setdefault("labels", {})
    if old.get("phase") in FINAL:
        raise ValueError(f"workflow {meta['name']} is already {old['phase']}; the controller never changes it again")
    spec = (template or {}).get("spec", {})
    stored = old.get("storedWorkflowTemplateSpec")
    if PHASE_LABEL not in labels:  # first reconcile
        params = merged_parameters(workflow, spec) if spec else []
        if spec:
            stored = {**spec, "arguments": {"parameters": params}} if params else dict(spec)
        values = {p["name"]: str(p.get("value", "")) for p in params}
        extra = spec.get("workflowMetadata", {})
        for key, value in (extra.get("labels") or {}).items():
            labels[key] = _substitute(str(value), values)
        annotations = {**(meta.get("annotations") or {}), **(extra.get("annotations") or {})}
        meta["annotations"] = dict(sorted({**annotations, POD_NAME_ANNOTATION: "v2"}.items()))
    labels[PHASE_LABEL] = phase
    labels.setdefault(COMPLETED_LABEL, "false")
    if phase in FINAL:
        labels[COMPLETED_LABEL] = "true"
    meta["labels"] = dict(sorted(labels.items()))
    meta["generation"] = int(meta.get("generation") or 1) + 1
    started = old.get("startedAt") or (None if phase == "Pending" else rfc3339(at))
    finished = rfc3339(at) if phase in FINAL else None
    if phase == "Failed":
        node_message = node_message or message or "Error (exit code 1)"
        message = message or node_message
    elif phase == "Error":
        node_message = node_message or message or "Workflow operation error"
        message = message or node_message
    status: dict[str, Any] = {"phase": phase, "startedAt": started, "finishedAt": finished}
    if phase != "Pending":
        status["progress"] = "1/1" if phase == "Succeeded" else "0/1"
    if message:
        status["message"] = message
    if phase != "Pending":
        status["nodes"] = {meta["name"]: _pod_node(workflow, spec, phase, started, finished, node_message)}
        steps = _steps(workflow, spec)
        if steps:
            status["nodes"] = _step_nodes(
                workflow, spec, steps, phase, started, finished, node_message, outputs, failed_step
            )
        running = [{"status": "True" if phase == "Running" else "False", "type": "PodRunning"}]
        status["conditions"] = running + ([{"status": "True", "type": "Completed"}] if phase in FINAL else [])
    if stored:
        status["storedWorkflowTemplateSpec"] = stored
    workflow["status"] = status
    return workflow


def _steps(workflow: Workflow, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps of an entrypoint made of steps (one step per group), else []."""
    entrypoint = workflow["spec"].get("entrypoint") or spec.get("entrypoint") or ""
    found = [t for t in spec.get("templates") or [] if t.get("name") == entrypoint and "steps" in t]
    return [group[0] for group in found[0]["steps"]] if found else []


def _step_nodes(
    workflow: Workflow,
    spec: dict[str, Any],
    steps: list[dict[str, Any]],
    phase: str,
    started: str | None,
    finished: str | None,
    message: str | None,
    outputs: dict[str, dict[str, str]] | None,
    failed_step: str | None = None,
) -> dict[str, Any]:
    """A steps entrypoint: a Steps root node and one Pod node per step. Running: the first step runs;
    Failed/Error: `failed_step` (default the last unconditional step) failed after the ones before it
    succeeded, and the steps after it never ran (Argo stops a steps sequence at its first failure); a
    step with a `when` after the ones that ran is Skipped (the platform team's recipe steps, which run
    only for recipe kind `workflow`: the controller stand-in records what really ran); each pod's
    outputs come from `outputs` (step template name -> output parameters), as the executor reports them."""
    name = workflow["metadata"]["name"]
    entrypoint = workflow["spec"].get("entrypoint") or spec.get("entrypoint") or ""
    root = {"id": name, "name": name, "displayName": name, "type": "Steps", "templateName": entrypoint}
    root |= {"phase": phase, "startedAt": started, "finishedAt": finished, "children": []}
    nodes: dict[str, Any] = {name: root}
    names = [step["name"] for step in steps]
    unconditional = [i for i, step in enumerate(steps) if "when" not in step] or [len(steps) - 1]
    failing = names.index(failed_step) if failed_step in names else unconditional[-1]
    for index, step in enumerate(steps):
        template = step.get("template") or (step.get("templateRef") or {}).get("template", "")
        if phase == "Running":
            state = "Running" if index == 0 else None
        elif phase in ("Failed", "Error"):
            state = phase if index == failing else ("Succeeded" if index < failing else None)
        elif "when" in step and index > unconditional[-1]:
            state = "Skipped"
        else:
            state = phase
        if state is None:
            break
        node_id = f"{name}-{1000000 + index}"
        kind = "Skipped" if state == "Skipped" else "Pod"
        node = {"id": node_id, "name": f"{name}[{index}].{step['name']}", "displayName": step["name"], "type": kind}
        node |= {"templateName": template, "phase": state, "startedAt": started}
        node["finishedAt"] = finished if state != "Running" else None
        if state == "Skipped":
            node["message"] = f"when '{step['when']}' evaluated false"
        if state in ("Failed", "Error") and message:
            node["message"] = message
            root["message"] = f"child '{node_id}' failed"
        if state in ("Succeeded", "Failed"):
            node["outputs"] = {"exitCode": "0" if state == "Succeeded" else "1"}
        if state == "Succeeded" and (outputs or {}).get(template):
            values = {
                p["name"]: str(p.get("value", "")) for p in workflow["spec"].get("arguments", {}).get("parameters", [])
            }
            given = (outputs or {})[template]
            node["outputs"]["parameters"] = [{"name": k, "value": _substitute(v, values)} for k, v in given.items()]
        root["children"].append(node_id)
        nodes[node_id] = node
    return nodes


def _pod_node(
    workflow: Workflow, spec: dict[str, Any], phase: str, started: str | None, finished: str | None, message: str | None
) -> dict[str, Any]:
    # The entrypoint of these templates is one script step, so the root node is the pod and its id is the
    # workflow's name (Workflow.NodeID returns the name for the root).
    name = workflow["metadata"]["name"]
    entrypoint = workflow["spec"].get("entrypoint") or spec.get("entrypoint") or ""
    node: dict[str, Any] = {"id": name, "name": name, "displayName": name, "type": "Pod"}
    if entrypoint:
        node["templateName"] = entrypoint
    node["templateScope"] = "local/"
    node["phase"] = phase
    if message:
        node["message"] = message
    node["startedAt"] = started
    node["finishedAt"] = finished
    node["progress"] = "1/1" if phase == "Succeeded" else "0/1"
    if phase in ("Succeeded", "Failed"):
        node["outputs"] = {"exitCode": "0" if phase == "Succeeded" else "1"}
    node["hostNodeName"] = "fake-node-1"
    return node


def _substitute(text: str, params: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*workflow\.parameters\.([-\w]+)\s*\}\}", lambda m: params.get(m.group(1), m.group(0)), text)


def generated_name(prefix: str) -> str:
    return prefix + "".join(random.choices(NAME_ALPHABET, k=5))


def birth_phase(config: dict[str, Any], template: str) -> str:
    """The phase the fake controller drives a fresh workflow to: per template, else the global rule."""
    return str((config.get("phases") or {}).get(template) or config.get("phase") or "")


# --- command line ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    name: str
    short: str = ""
    kind: str = "string"  # bool string int int32 int64 array slice enum
    allowed: tuple[str, ...] = ()
    modelled: bool = True


GLOBAL_FLAGS = [
    Flag("argo-base-href"),
    Flag("argo-http1", kind="bool"),
    Flag("argo-server", "s"),
    Flag("as"),
    Flag("as-group", kind="array"),
    Flag("as-uid"),
    Flag("certificate-authority"),
    Flag("client-certificate"),
    Flag("client-key"),
    Flag("cluster"),
    Flag("context"),
    Flag("disable-compression", kind="bool"),
    Flag("gloglevel", kind="int"),
    Flag("header", "H", kind="slice"),
    Flag("help", "h", kind="bool"),
    Flag("insecure-skip-tls-verify", kind="bool"),
    Flag("insecure-skip-verify", "k", kind="bool"),
    Flag("instanceid"),
    Flag("kubeconfig"),
    Flag("loglevel"),
    Flag("namespace", "n"),
    Flag("password"),
    Flag("proxy-url"),
    Flag("request-timeout"),
    Flag("secure", "e", kind="bool"),
    Flag("server"),
    Flag("tls-server-name"),
    Flag("token"),
    Flag("user"),
    Flag("username"),
    Flag("verbose", "v", kind="bool"),
]
WORKFLOW_OUTPUTS = ("name", "json", "yaml", "wide")
COMMANDS: dict[str, tuple[str, list[Flag]]] = {
    "submit": (
        "argo submit [FILE... | --from `kind/name] [flags]",
        [
            Flag("dry-run", kind="bool"),
            Flag("entrypoint"),
            Flag("from"),
            Flag("generate-name"),
            Flag("labels", "l"),
            Flag("log", kind="bool", modelled=False),
            Flag("name"),
            Flag("node-field-selector", modelled=False),
            Flag("output", "o", kind="enum", allowed=WORKFLOW_OUTPUTS),
            Flag("parameter", "p", kind="array"),
            Flag("parameter-file", "f", modelled=False),
            Flag("priority", kind="int32"),
            Flag("scheduled-time"),
            Flag("server-dry-run", kind="bool"),
            Flag("serviceaccount"),
            Flag("status"),
            Flag("strict", kind="bool"),
            Flag("wait", "w", kind="bool", modelled=False),
            Flag("watch", kind="bool", modelled=False),
        ],
    ),
    "list": (
        "argo list [flags]",
        [
            Flag("all-namespaces", "A", kind="bool"),
            Flag("chunk-size", kind="int64"),
            Flag("completed", kind="bool"),
            Flag("field-selector", modelled=False),
            Flag("no-headers", kind="bool"),
            Flag("older", modelled=False),
            Flag("output", "o", kind="enum", allowed=WORKFLOW_OUTPUTS),
            Flag("prefix"),
            Flag("resubmitted", kind="bool"),
            Flag("running", kind="bool"),
            Flag("selector", "l"),
            Flag("since", modelled=False),
            Flag("status", kind="slice"),
        ],
    ),
    "get": (
        "argo get WORKFLOW... [flags]",
        [
            Flag("no-color", kind="bool"),
            Flag("no-utf8", kind="bool"),
            Flag("node-field-selector", modelled=False),
            Flag("output", "o", kind="enum", allowed=("name", "json", "yaml", "short", "wide")),
            Flag("status", modelled=False),
        ],
    ),
    "version": ("argo version [flags]", [Flag("short", kind="bool")]),
    "template get": (
        "argo template get WORKFLOW_TEMPLATE... [flags]",
        [Flag("output", "o", kind="enum", allowed=WORKFLOW_OUTPUTS)],
    ),
    "template list": (
        "argo template list [flags]",
        [
            Flag("all-namespaces", "A", kind="bool"),
            Flag("output", "o", kind="enum", allowed=("wide", "name")),
            Flag("selector", "l"),
        ],
    ),
}


@dataclass
class Args:
    verb: str
    values: dict[str, list[str]] = field(default_factory=dict)
    positional: list[str] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return name in self.values

    def text(self, name: str, default: str = "") -> str:
        return self.values[name][-1] if name in self.values else default

    def flag(self, name: str) -> bool:
        return self.text(name, "false") == "true"

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])


def _usage(verb: str) -> str:
    use, flags = COMMANDS[verb]
    lines = []
    for flag in [*flags, Flag("help", "h", kind="bool")]:
        short = f"-{flag.short}, " if flag.short else "    "
        kind = {"bool": "", "array": " stringArray", "slice": " strings", "enum": " string"}.get(
            flag.kind, f" {flag.kind}"
        )
        lines.append(f"  {short}--{flag.name}{kind}")
    return f"Usage:\n  {use}\n\nFlags:\n" + "\n".join(lines) + "\n"


def _flag_error(verb: str, message: str) -> Exit:
    # Flag errors happen before PersistentPreRun sets SilenceUsage, so cobra prints usage after the error.
    return fail(f"Error: {message}\n{_usage(verb)}")


def _go_parse_int(text: str, bits: int) -> int:
    """strconv.ParseInt(s, 0, bits), which pflag's int flags use: 0x, 0o, 0b and leading-0 octal, and _."""
    body = text[1:] if text[:1] in ("+", "-") else text
    sign = -1 if text.startswith("-") else 1
    base, digits = 10, body
    if body[:2].lower() in ("0x", "0o", "0b"):
        base, digits = {"x": 16, "o": 8, "b": 2}[body[1].lower()], body[2:]
    elif body.startswith("0") and len(body) > 1:
        base, digits = 8, body[1:]
    if not digits or digits.startswith("_") or digits.endswith("_") or "__" in digits:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    try:
        value = sign * int(digits.replace("_", ""), base)
    except ValueError:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax") from None
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def _set(args: Args, flag: Flag, value: str, verb: str) -> None:
    shown = f"-{flag.short}, --{flag.name}" if flag.short else f"--{flag.name}"
    try:
        if flag.kind == "bool":
            truth = {"1": "true", "t": "true", "T": "true", "TRUE": "true", "true": "true", "True": "true"}
            falsity = {"0": "false", "f": "false", "F": "false", "FALSE": "false", "false": "false", "False": "false"}
            if value not in truth and value not in falsity:
                raise ValueError(f"strconv.ParseBool: parsing {go_quote(value)}: invalid syntax")
            value = truth.get(value) or falsity[value]
        elif flag.kind in ("int", "int64", "int32"):
            value = str(_go_parse_int(value, 32 if flag.kind == "int32" else 64))
        elif flag.kind == "enum" and value not in flag.allowed:
            raise ValueError("One of: " + "|".join(flag.allowed))
    except ValueError as error:
        raise _flag_error(verb, f"invalid argument {go_quote(value)} for {go_quote(shown)} flag: {error}") from None
    if flag.kind == "slice":  # pflag StringSlice: comma separated, and "" is an empty list
        args.values.setdefault(flag.name, []).extend(v for v in value.split(",") if value)
    elif flag.kind == "array":
        args.values.setdefault(flag.name, []).append(value)
    else:
        args.values[flag.name] = [value]


def parse_args(verb: str, argv: list[str]) -> Args:
    """pflag's rules: --name=value, --name value, -n value, -nvalue, grouped bool shorthands, `--`."""
    flags = [*GLOBAL_FLAGS, *COMMANDS[verb][1]]
    by_name = {f.name: f for f in flags}
    by_short = {f.short: f for f in flags if f.short}
    args = Args(verb)
    words = verb.split()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            args.positional += argv[i:]
            break
        if arg.startswith("--"):
            name, eq, inline = arg[2:].partition("=")
            flag = by_name.get(name)
            if flag is None:
                raise _flag_error(verb, f"unknown flag: --{name}")
            if eq:
                _set(args, flag, inline, verb)
            elif flag.kind == "bool":
                _set(args, flag, "true", verb)
            elif i < len(argv):
                _set(args, flag, argv[i], verb)
                i += 1
            else:
                raise _flag_error(verb, f"flag needs an argument: --{name}")
        elif arg.startswith("-") and arg != "-":
            shorts = arg[1:]
            j = 0
            while j < len(shorts):
                char = shorts[j]
                flag = by_short.get(char)
                if flag is None:
                    raise _flag_error(verb, f"unknown shorthand flag: '{char}' in -{shorts}")
                rest = shorts[j + 1 :]
                if rest.startswith("="):
                    _set(args, flag, rest[1:], verb)
                    break
                if flag.kind == "bool":
                    _set(args, flag, "true", verb)
                    j += 1
                    continue
                if rest:
                    _set(args, flag, rest, verb)
                elif i < len(argv):
                    _set(args, flag, argv[i], verb)
                    i += 1
                else:
                    raise _flag_error(verb, f"flag needs an argument: '{char}' in -{shorts}")
                break
        elif words and arg == words[0]:
            words.pop(0)  # the command words themselves, wherever global flags put them
        else:
            args.positional.append(arg)
    return args


def find_verb(argv: list[str]) -> str | None:
    """Cobra's command lookup: the first words that are not flags (or flag values) name the command."""
    value_flags = {f"--{f.name}" for f in GLOBAL_FLAGS if f.kind != "bool"}
    value_flags |= {f"-{f.short}" for f in GLOBAL_FLAGS if f.short and f.kind != "bool"}
    words: list[str] = []
    i = 0
    while i < len(argv) and len(words) < 2:
        arg = argv[i]
        if arg in value_flags:
            i += 2
            continue
        if not arg.startswith("-"):
            words.append(arg)
        i += 1
    if not words:
        return None
    if words[0] == "template" and len(words) > 1:
        return f"template {words[1]}"
    return words[0]


# --- the CLI's behaviour --------------------------------------------------------------------------


@dataclass
class Run:
    state: Path
    config: dict[str, Any]
    args: Args
    mode: str

    @property
    def namespace(self) -> str:
        """client.Namespace(): -n, then ARGO_NAMESPACE (even if empty), then the kubeconfig's context."""
        if self.args.has("namespace"):
            return self.args.text("namespace")
        if "ARGO_NAMESPACE" in os.environ:
            return os.environ["ARGO_NAMESPACE"]
        return str(self.config.get("default_namespace", "default"))

    @property
    def server_mode(self) -> bool:
        return bool(self.config.get("server_version"))

    @property
    def user(self) -> str:
        return str(self.config.get("user", DEFAULT_USER))

    def templates(self) -> dict[str, tuple[dict[str, Any], Path]]:
        return {} if self.mode == "notfound-template" else load_templates(self.config, self.namespace)

    def connect(self, prefix: str = "") -> None:
        """NewAPIClient: where an unreachable cluster shows up (contract §1.6 item 5)."""
        if self.mode != "unavailable":
            return
        if self.server_mode:
            raise fail(
                f"Error: {prefix}rpc error: code = Unavailable desc = connection error: desc = "
                '"transport: Error while dialing: dial tcp 10.0.0.1:2746: connect: connection refused"'
            )
        raise fail(
            log_line(
                "fatal",
                'Post "https://10.0.0.1:6443/apis/authorization.k8s.io/v1/selfsubjectaccessreviews": '
                "dial tcp 10.0.0.1:6443: connect: connection refused",
                self.config,
            )
        )


def submit(run: Run) -> int:
    args = run.args
    output = args.text("output")
    if args.has("from") and args.positional:
        raise fail("Error: cannot combine --from with file arguments\n" + _usage("submit"))
    if not args.has("from"):
        raise fail("fake argo: submitting workflow files is not modelled; use --from", 2)
    dry_run, server_dry_run = args.flag("dry-run"), args.flag("server-dry-run")
    for problem, message in (
        (args.flag("watch") and args.flag("wait"), "--wait cannot be combined with --watch"),
        (args.flag("watch") and dry_run, "--watch cannot be combined with --dry-run"),
        (args.flag("watch") and server_dry_run, "--watch cannot be combined with --server-dry-run"),
        (args.flag("wait") and dry_run, "--wait cannot be combined with --dry-run"),
        (args.flag("wait") and server_dry_run, "--wait cannot be combined with --server-dry-run"),
        (dry_run and not output, "--dry-run should have an output option"),
        (dry_run and server_dry_run, "--dry-run cannot be combined with --server-dry-run"),
        (server_dry_run and not output, "--server-dry-run should have an output option"),
    ):
        if problem:
            raise fail(f"Error: {message}")
    for unmodelled in ("wait", "watch", "log"):
        if args.flag(unmodelled):
            raise fail(f"fake argo: submit --{unmodelled} is not modelled", 2)
    identifier = args.text("from")
    if "/" not in identifier:
        raise fail(
            f"Error: resource identifier '{identifier}' is malformed. Should be `kind/name`, "
            "e.g. cronwf/hello-world-cwf"
        )
    kind, template_name = identifier.split("/", 1)
    annotations = {}
    if args.has("scheduled-time"):
        try:
            datetime.strptime(args.text("scheduled-time").replace("Z", "+00:00"), "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            raise fail(
                "Error: scheduled-time contains invalid time.RFC3339 format. (e.g.: `2006-01-02T15:04:05-07:00`)"
            ) from None
        annotations[SCHEDULED_ANNOTATION] = args.text("scheduled-time")
    run.connect(SUBMIT_ERROR)
    namespace = run.namespace
    rpc = f"Error: {SUBMIT_ERROR}rpc error: code = "
    if kind not in TEMPLATE_KINDS:
        if kind in ("CronWorkflow", "cronworkflow", "cronworkflows", "cronwf"):
            raise fail(f'{rpc}NotFound desc = cronworkflows.argoproj.io "{template_name}" not found')
        if kind in ("ClusterWorkflowTemplate", "clusterworkflowtemplate", "clusterworkflowtemplates", "cwftmpl"):
            raise fail("fake argo: ClusterWorkflowTemplates are not modelled", 2)
        raise fail(f"{rpc}InvalidArgument desc = Resource kind '{kind}' is not supported for submitting")

    # ApplySubmitOpts (server side for --from): labels first, then parameters; errors come back as Internal.
    labels = {TEMPLATE_LABEL: template_name}
    instance = args.text("instanceid", os.environ.get("ARGO_INSTANCEID", ""))
    if instance:
        labels[INSTANCE_LABEL] = instance
    if run.config.get("creator"):
        labels[CREATOR_LABEL] = _dns_friendly(str(run.config["creator"]))
    label_spec = args.text("labels")
    if label_spec:
        for term in label_spec.split(","):
            parts = term.split("=")
            wrong = f"unexpected label spec: {term}" if len(parts) != 2 else ""
            wrong = wrong or ("unexpected empty label key" if not parts[0] else "")
            if wrong:
                raise fail(
                    f"{rpc}Internal desc = expected labels of the form: NAME1=VALUE2,NAME2=VALUE2. "
                    f"Received: {label_spec}: {wrong}"
                )
            labels[parts[0]] = parts[1]
    params = []
    for raw in args.all("parameter"):
        if "=" not in raw:
            raise fail(f"{rpc}Internal desc = expected parameter of the form: NAME=VALUE. Received: {raw}")
        key, value = raw.split("=", 1)
        params.append({"name": key, "value": value})
    workflow = new_workflow(
        template_name,
        namespace,
        params,
        labels,
        name=args.text("name"),
        generate_name=args.text("generate-name") or None,  # ApplySubmitOpts ignores an empty one
        annotations=annotations,
        entrypoint=args.text("entrypoint"),
        service_account=args.text("serviceaccount"),
    )

    # validate.ValidateWorkflow with Submit: true.
    name = args.text("name")
    if len(name) > 63:
        raise fail(
            f"{rpc}InvalidArgument desc = workflow name {go_quote(name)} must not be more than 63 characters long "
            f"(currently {len(name)})"
        )
    template = run.templates().get(template_name)
    if template is None:
        raise fail(f'{rpc}NotFound desc = workflowtemplates.argoproj.io "{template_name}" not found')
    given = {p["name"] for p in params}
    for declared in template[0]["spec"].get("arguments", {}).get("parameters", []):
        if "value" not in declared and "valueFrom" not in declared and declared["name"] not in given:
            missing = declared["name"]
            raise fail(
                f"{rpc}InvalidArgument desc = spec.arguments.{missing}.value or "
                f"spec.arguments.{missing}.valueFrom is required"
            )
    if dry_run:  # returned un-created: no name, uid or namespace (e2e TestSubmitWorkflowTemplateDryRun)
        del workflow["metadata"]["namespace"]
        return print_workflow(workflow, output, run)

    # The API server: RBAC first, then the generated name, object validation, then storage.
    if run.mode == "forbidden":
        raise fail(
            f'{rpc}PermissionDenied desc = workflows.argoproj.io is forbidden: User "{run.user}" cannot create '
            f'resource "workflows" in API group "argoproj.io" in the namespace "{namespace}"'
        )
    store = Store(run.state)
    try:
        with store.write():
            created = _create(store, workflow, template[0], run, server_dry_run)
    finally:
        store.close()
    if run.mode in ("empty", "garbage", "null", "object"):
        return junk(run, created)
    return print_workflow(created, output, run)


def _create(store: Store, workflow: Workflow, template: dict[str, Any], run: Run, dry_run: bool) -> Workflow:
    meta = workflow["metadata"]
    namespace, rpc = meta["namespace"], f"Error: {SUBMIT_ERROR}rpc error: code = "
    name = meta.get("name") or ""
    if not name and meta.get("generateName"):
        for _ in range(8):  # the API server retries a generated name that is taken (RetryGenerateName)
            name = generated_name(meta["generateName"])
            if not store.exists(namespace, name):
                break
    errors = []
    if not name:
        errors.append("metadata.name: Required value: name or generateName is required")
    elif len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        errors.append(
            invalid(
                "metadata.name",
                name,
                [
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                ],
            )
        )
    for key, value in sorted(meta.get("labels", {}).items()):
        errors += [invalid("metadata.labels", key, [m]) for m in qualified_name_errors(key)]
        errors += [invalid("metadata.labels", value, [m]) for m in label_value_errors(value)]
    if errors:
        raise fail(f'{rpc}InvalidArgument desc = Workflow.argoproj.io "{name}" is invalid: {aggregate(errors)}')
    if store.exists(namespace, name):
        raise fail(f'{rpc}AlreadyExists desc = workflows.argoproj.io "{name}" already exists')
    now = clock(run.config)
    created = admit(workflow, name, now, None if dry_run else store.resource_version())
    if dry_run:  # dryRun=All: the would-be object, generated name and uid included, nothing stored
        return created
    live = json.loads(json.dumps(created))
    template_name = meta["labels"].get(TEMPLATE_LABEL, "")
    phase = birth_phase(run.config, template_name)
    if phase:
        failed = phase in ("Failed", "Error")
        message = (run.config.get("fail_message") or {}).get(template_name) if failed else None
        reconcile(live, phase, now, template=template, node_message=message, outputs=run.config.get("outputs"))
        live["metadata"]["resourceVersion"] = store.resource_version()
    store.insert([live])
    return created


def _dns_friendly(text: str) -> str:
    value = re.sub(r"[^-_.a-z0-9A-Z]", "-", text)[-63:]
    return re.sub(r"[^a-z0-9A-Z]*$", "", re.sub(r"^[^a-z0-9A-Z]*", "", value))


def print_workflow(workflow: Workflow, output: str, run: Run) -> int:
    """printWorkflow in cmd/argo/commands/get.go."""
    if output == "name":
        print(workflow["metadata"].get("name", ""))
    elif output == "json":
        print(go_json(workflow, 4))
    elif output == "yaml":
        sys.stdout.write(go_yaml(workflow))
    else:
        sys.stdout.write(describe(workflow, run))
    return 0


def exec_spec(workflow: Workflow) -> dict[str, Any]:
    """Workflow.GetExecSpec: the stored template spec once the controller has seen the workflow."""
    return dict(workflow["status"].get("storedWorkflowTemplateSpec") or workflow["spec"])


def describe(workflow: Workflow, run: Run) -> str:
    """common.PrintWorkflowHelper's header block (the step tree below it is not modelled)."""
    row = "{:<20} {}\n".format
    meta, status, spec = workflow["metadata"], workflow["status"], exec_spec(workflow)
    now = clock(run.config)
    account = spec.get("serviceAccountName") or (
        "unset" if workflow["spec"].get("workflowTemplateRef") else "unset (will run with the default ServiceAccount)"
    )
    out = row("Name:", meta.get("name", "")) + row("Namespace:", meta.get("namespace", ""))
    out += row("ServiceAccount:", account) + row("Status:", workflow_status(workflow))
    if status.get("message"):
        out += row("Message:", status["message"])
    created = parse_time(meta["creationTimestamp"]) if meta.get("creationTimestamp") else None
    out += row("Created:", _timestamp(created, now) if created else "Mon Jan 01 00:00:00 +0000 (a long while ago)")
    if status.get("startedAt"):
        out += row("Started:", _timestamp(parse_time(status["startedAt"]), now))
    if status.get("finishedAt"):
        out += row("Finished:", _timestamp(parse_time(status["finishedAt"]), now))
    if status.get("startedAt"):
        end = parse_time(status["finishedAt"]) if status.get("finishedAt") else now
        out += row("Duration:", _duration(end - parse_time(status["startedAt"])))
    out += row("Progress:", status.get("progress", ""))
    params = [p for p in spec.get("arguments", {}).get("parameters", []) if "value" in p]
    if params:
        out += row("Parameters:", "")
        out += "".join(row(f"  {p['name']}:", p["value"]) for p in params)
    return out


def workflow_status(workflow: Workflow) -> str:
    """printer.WorkflowStatus: an unset phase with a creation time reads as Pending."""
    phase = workflow["status"].get("phase") or ""
    if phase in ("", "Pending"):
        return "Pending" if workflow["metadata"].get("creationTimestamp") else "Unknown"
    return str(phase)


# go-humanize magnitudes: (upper bound in seconds, format, divisor in seconds); argo's short table last.
_DAY, _WEEK, _MONTH, _YEAR = 86400, 7 * 86400, 30 * 86400, 12 * 30 * 86400
_LONG = [
    (1, "now", 1),
    (2, "1 second {}", 1),
    (60, "{n} seconds {}", 1),
    (120, "1 minute {}", 1),
    (3600, "{n} minutes {}", 60),
    (7200, "1 hour {}", 1),
    (_DAY, "{n} hours {}", 3600),
    (2 * _DAY, "1 day {}", 1),
    (_WEEK, "{n} days {}", _DAY),
    (2 * _WEEK, "1 week {}", 1),
    (_MONTH, "{n} weeks {}", _WEEK),
    (2 * _MONTH, "1 month {}", 1),
    (_YEAR, "{n} months {}", _MONTH),
    (18 * _MONTH, "1 year {}", 1),
    (2 * _YEAR, "2 years {}", 1),
    (37 * _YEAR, "{n} years {}", _YEAR),
    (2**62, "a long while {}", 1),
]
_SHORT = [
    (1, "0s", 1),
    (2, "1s {}", 1),
    (60, "{n}s {}", 1),
    (120, "1m {}", 1),
    (3600, "{n}m {}", 60),
    (7200, "1h {}", 1),
    (_DAY, "{n}h {}", 3600),
    (2 * _DAY, "1d {}", 1),
    (_WEEK, "{n}d {}", _DAY),
]
_DURATION = [
    (1, "0 seconds", 1),
    (2, "1 second {}", 1),
    (60, "{n} seconds {}", 1),
    (120, "1 minute {}", 1),
    (3600, "{n} minutes {}", 60),
    (7200, "1 hour {}", 1),
    (_DAY, "{n} hours {}", 3600),
    (2 * _DAY, "1 day {}", 1),
    (_WEEK, "{n} days {}", _DAY),
]


def _relative(seconds: float, label: str, table: list[tuple[int, str, int]]) -> str:
    """gohumanize.CustomRelTime: the first magnitude above the difference, else the last one."""
    chosen = next((m for m in table if m[0] > seconds), table[-1])
    return chosen[1].format(label, n=int(seconds // chosen[2])).strip()


def _timestamp(at: datetime, now: datetime) -> str:
    seconds = (now - at).total_seconds()
    label = "ago" if seconds >= 0 else "from now"
    return f"{at.strftime('%a %b %d %H:%M:%S +0000')} ({_relative(abs(seconds), label, _LONG)})"


def _duration(span: timedelta) -> str:
    """humanize.Duration: up to two units."""
    seconds = span.total_seconds()
    first = _relative(seconds, "", _DURATION)
    if seconds < 60:
        return first
    if seconds < 3600:
        return f"{first} {int(seconds % 60)} seconds"
    if seconds < _DAY:
        return f"{first} {int(seconds // 60 % 60)} minutes"
    return f"{first} {int(seconds // 3600 % 24)} hours"


def list_workflows(run: Run) -> int:
    args = run.args
    # Client side first (list.go listWorkflows): the selector is parsed, then --status/--completed/--running.
    try:
        selector = parse(args.text("selector"))
    except SelectorError as error:
        raise fail(f"Error: {error}") from None
    if args.all("status"):
        selector = selector.add(requirement(PHASE_LABEL, "in", args.all("status"))[0])
    if args.flag("completed") and args.flag("running"):
        raise fail("Error: --completed and --running cannot be used together")
    if args.flag("completed"):
        selector = selector.add(requirement(COMPLETED_LABEL, "=", ["true"])[0])
    if args.flag("running"):
        selector = selector.add(requirement(COMPLETED_LABEL, "!=", ["true"])[0])
    if args.flag("resubmitted"):
        selector = selector.add(requirement(RESUBMITTED_LABEL, "exists", [])[0])
    run.connect()
    everywhere = args.flag("all-namespaces")
    namespace = "" if everywhere else run.namespace
    if run.mode == "forbidden":
        raise fail(
            f"Error: rpc error: code = PermissionDenied desc = Permission denied, you are not allowed to list "
            f'workflows in namespace "{namespace}". Maybe you want to specify a namespace with query parameter '
            f"`.namespace={namespace}`?"
        )
    output = args.text("output")
    store = Store(run.state)
    try:
        brief = output == "name" and run.mode == "normal"
        items = store.select(namespace or None, selector, names_only=brief)
    finally:
        store.close()
    chunk = int(args.text("chunk-size", "0"))
    if chunk > 0 and not run.server_mode:
        # Kube mode counts live workflows with the same Limit it lists with, so it never sees a next page:
        # v3.7.18 server/workflow/workflow_server.go ListWorkflows with store.kubeLister (argo-kube-client.go).
        items = items[:chunk]
    prefix = args.text("prefix")
    items = sort_workflows([w for w in items if w["metadata"]["name"].startswith(prefix)])
    if run.mode in ("empty", "garbage", "null", "object"):
        return junk(run, items)
    return print_workflows(items, output, run, no_headers=args.flag("no-headers"), everywhere=everywhere)


def sort_workflows(items: list[Workflow]) -> list[Workflow]:
    """Workflows.Less: unfinished first, newest created first; then finished, latest finished first.
    Ties keep the API server's (name) order; Go's unstable sort leaves them arbitrary."""
    running = [w for w in items if not w["status"].get("finishedAt")]
    done = [w for w in items if w["status"].get("finishedAt")]
    running.sort(key=lambda w: w["metadata"]["creationTimestamp"], reverse=True)
    done.sort(key=lambda w: w["status"]["finishedAt"], reverse=True)
    return running + done


def print_workflows(items: list[Workflow], output: str, run: Run, *, no_headers: bool, everywhere: bool) -> int:
    """printer.PrintWorkflows."""
    if not items:
        print("[]" if output in ("json", "yaml") else "No workflows found")
    elif output == "name":
        sys.stdout.write("".join(w["metadata"]["name"] + "\n" for w in items))
    elif output == "json":
        print(go_json(items, 2))
    elif output == "yaml":
        print(go_yaml(items))
    else:
        sys.stdout.write(table(items, run, wide=output == "wide", no_headers=no_headers, everywhere=everywhere))
    return 0


def table(items: list[Workflow], run: Run, *, wide: bool, no_headers: bool, everywhere: bool) -> str:
    now = clock(run.config)
    rows: list[list[str]] = []
    if not no_headers:
        rows.append(
            (["NAMESPACE"] if everywhere else [])
            + ["NAME", "STATUS", "AGE", "DURATION", "PRIORITY", "MESSAGE"]
            + (["P/R/C", "PARAMETERS"] if wide else [])
        )
    for w in items:
        meta, status = w["metadata"], w["status"]
        started = parse_time(status["startedAt"]) if status.get("startedAt") else None
        finished = parse_time(status["finishedAt"]) if status.get("finishedAt") else (now if started else None)
        age = _relative(abs((now - parse_time(meta["creationTimestamp"])).total_seconds()), "", _SHORT)
        duration = _relative(((finished - started).total_seconds() if started and finished else 0), "", _SHORT)
        row = ([meta["namespace"]] if everywhere else []) + [
            meta["name"],
            workflow_status(w),
            age,
            duration,
            str(w["spec"].get("priority", 0)),
            status.get("message", ""),
        ]
        if wide:
            pods = [n for n in (status.get("nodes") or {}).values() if n.get("type") == "Pod"]
            done = sum(1 for n in pods if n.get("phase") in ("Succeeded", "Failed", "Error", "Skipped", "Omitted"))
            running = sum(1 for n in pods if n.get("phase") == "Running")
            params = w["spec"].get("arguments", {}).get("parameters", [])
            row += [
                f"{len(pods) - done - running}/{running}/{done}",
                ",".join(f"{p['name']}={_truncate(p['value'])}" for p in params if "value" in p),
            ]
        rows.append(row)
    out = tabwriter(rows, padding=3)
    completed = sum(1 for w in items if w["status"].get("phase") in FINAL)
    incomplete = len(items) - completed
    if completed > 100 or incomplete > 100:
        counts = " and ".join(
            text
            for text, show in (
                (f"{incomplete} incomplete", incomplete > 100),
                (f"{completed} completed", completed > 100),
            )
            if show
        )
        out += (
            f"\nYou have at least {counts} workflows. Reducing the total number of workflows will reduce your costs.\n"
            "Learn more at https://argo-workflows.readthedocs.io/en/latest/cost-optimisation/\n"
        )
    return out


def _truncate(value: str, limit: int = 50) -> str:
    # parameterString's truncateString, quirks included.
    if len(value) <= limit:
        return value
    limit -= 3
    return value[: limit - 15] + "..." + value[-15:]


def tabwriter(rows: list[list[str]], padding: int) -> str:
    """text/tabwriter with minwidth 0 and ' ' padding: every cell but a line's last is padded."""
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell))
    return "".join(
        "".join(cell.ljust(widths[i] + padding) for i, cell in enumerate(row[:-1])) + row[-1] + "\n" for row in rows
    )


def get_workflows(run: Run) -> int:
    args = run.args
    if not args.positional:
        raise fail("Error: requires at least 1 arg(s), only received 0\n" + _usage("get"))
    run.connect()
    namespace = run.namespace
    store = Store(run.state)
    try:
        for name in args.positional:
            workflow = _get_one(run, store, namespace, name)
            if run.mode in ("empty", "garbage", "null", "object"):
                return junk(run, workflow)
            print_workflow(workflow, args.text("output"), run)
    finally:
        store.close()
    return 0


def _get_one(run: Run, store: Store, namespace: str, name: str) -> Workflow:
    if name == "@latest":
        items = store.select(namespace, Selector())
        if not items:
            raise fail("Error: rpc error: code = NotFound desc = no workflows found")
        return max(items, key=lambda w: w["metadata"]["creationTimestamp"])
    # getWorkflow: the live object, else the archive; kube mode's archive is sqldb.NullWorkflowArchive.
    if run.mode == "forbidden":
        live = (
            f'workflows.argoproj.io "{name}" is forbidden: User "{run.user}" cannot get resource "workflows" '
            f'in API group "argoproj.io" in the namespace "{namespace}"'
        )
        archive, code = "rpc error: code = PermissionDenied desc = permission denied", "PermissionDenied"
    else:
        found = store.get(namespace, name)
        if found is not None:
            return found
        live = f'workflows.argoproj.io "{name}" not found'
        archive, code = "getting archived workflows not supported", "NotFound"
    print(
        log_line(
            "error", f"failed to get live workflow: {live}; failed to get archived workflow: {archive}", run.config
        ),
        file=sys.stderr,
    )
    raise fail(f"Error: rpc error: code = {code} desc = {live}")


def template_get(run: Run) -> int:
    run.connect()
    templates = run.templates()
    for name in run.args.positional:
        if run.mode == "forbidden":
            raise fail("Error: rpc error: code = PermissionDenied desc = permission denied")
        if name not in templates:
            raise fail(f'Error: rpc error: code = NotFound desc = workflowtemplates.argoproj.io "{name}" not found')
        doc, path = templates[name]
        template = template_object(doc, path, run.namespace)
        if run.mode in ("empty", "garbage", "null", "object"):
            return junk(run, template)
        output = run.args.text("output")
        if output == "name":
            print(name)
        elif output == "json":
            print(go_json(template, 4))
        elif output == "yaml":
            sys.stdout.write(go_yaml(template))
        else:
            sys.stdout.write(_template_block(template, run))
    return 0


def _template_block(template: dict[str, Any], run: Run) -> str:
    meta = template["metadata"]
    created = _timestamp(parse_time(meta["creationTimestamp"]), clock(run.config))
    return "".join(
        "{:<20} {}\n".format(*pair)
        for pair in (("Name:", meta["name"]), ("Namespace:", meta["namespace"]), ("Created:", created))
    )


def template_list(run: Run) -> int:
    run.connect()
    try:
        selector = parse(run.args.text("selector"))
    except SelectorError as error:
        raise fail(f"Error: {error}") from None
    everywhere = run.args.flag("all-namespaces")
    namespace = run.namespace
    if run.mode == "forbidden":
        scope = "at the cluster scope" if everywhere else f'in the namespace "{namespace}"'
        raise fail(
            f"Error: rpc error: code = PermissionDenied desc = workflowtemplates.argoproj.io is forbidden: User "
            f'"{run.user}" cannot list resource "workflowtemplates" in API group "argoproj.io" {scope}'
        )
    home = str(run.config.get("namespace", "envbot-workflows"))
    templates = {} if run.mode == "notfound-template" else load_templates(run.config, home)
    names = [
        n
        for n, (doc, _) in sorted(templates.items())
        if (everywhere or namespace == home) and selector.matches(doc["metadata"].get("labels") or {})
    ]
    if run.mode in ("empty", "garbage", "null", "object"):
        return junk(run, names)
    if run.args.text("output") == "name":
        sys.stdout.write("".join(n + "\n" for n in names))
    else:
        rows = [["NAMESPACE", "NAME"] if everywhere else ["NAME"]]
        rows += [[home, n, ""] if everywhere else [n, ""] for n in names]
        sys.stdout.write(tabwriter(rows, padding=3))
    return 0


def version(run: Run) -> int:
    """cmd/argo/commands/version.go: the client block; the argo-server block only in argo-server mode."""
    short = run.args.flag("short")
    client = str(run.config.get("version", CLIENT_VERSION))
    if run.mode in ("empty", "garbage", "null", "object"):
        return junk(run, client)
    sys.stdout.write(version_block("argo", client, short))
    if run.server_mode:
        run.connect()
        server = str(run.config["server_version"])
        sys.stdout.write(version_block("argo-server", server, short))
        if server != client:  # PrintVersionMismatchWarning, run after every command in argo-server mode
            warning = (
                f"CLI version ({client}) does not match server version ({server}). "
                "This can lead to unexpected behavior."
            )
            print(log_line("warning", warning, run.config), file=sys.stderr)
    return 0


def version_block(cli: str, release: str, short: bool) -> str:
    """util/cmd PrintVersion, with a release build's fields (GitTag set, tree clean)."""
    if short:
        return f"{cli}: {release}\n"
    built, commit, go = RELEASES.get(
        release,
        ("2026-01-01T00:00:00Z", hashlib.sha1(release.encode()).hexdigest(), "go1.25.7"),  # noqa: S324
    )
    fields = [
        ("BuildDate", built),
        ("GitCommit", commit),
        ("GitTreeState", "clean"),
        ("GitTag", release),
        ("GoVersion", go),
        ("Compiler", "gc"),
        ("Platform", "linux/amd64"),
    ]
    return f"{cli}: {release}\n" + "".join(f"  {key}: {value}\n" for key, value in fields)


def junk(run: Run, value: Any) -> int:
    """The faults that exit 0 with output a caller cannot use."""
    if run.mode == "null":
        print("null")
    elif run.mode == "object":
        print("{}")
    elif run.mode == "garbage":
        if isinstance(value, dict) and "status" in value:
            sys.stdout.write(describe(value, run))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            sys.stdout.write(table(value, run, wide=False, no_headers=False, everywhere=False))
        else:
            print("Name:                <garbage>\nthis is not what you asked for")
    return 0


# Commands the real CLI has that this stand-in does not answer: it says so instead of mimicking cobra.
REAL_COMMANDS = {
    *("archive", "auth", "cluster-template", "completion", "cp", "cron", "delete", "executor-plugin", "lint"),
    *("logs", "node", "resubmit", "resume", "retry", "server", "stop", "suspend", "terminate", "wait", "watch"),
    *("create", "update", "template"),
}
HANDLERS = {
    "submit": submit,
    "list": list_workflows,
    "get": get_workflows,
    "version": version,
    "template get": template_get,
    "template list": template_list,
}


def record(state: Path, argv: list[str]) -> None:
    """Append this call; env holds only the NAMES of the variables this process was started with."""
    try:  # the environment as exec'd, before Python's own changes (e.g. its LC_CTYPE coercion)
        names = sorted(
            {
                e.split(b"=", 1)[0].decode(errors="replace")
                for e in Path("/proc/self/environ").read_bytes().split(b"\0")
                if e
            }
        )
    except OSError:
        names = sorted(os.environ)
    line = json.dumps({"argv": argv, "pid": os.getpid(), "env": names}) + "\n"
    with (state / "calls.jsonl").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(line)


def verb_setting(config: dict[str, Any], key: str, verb: str, default: Any) -> Any:
    """`<key>s[verb]` (or its "template" group), else the global `<key>`."""
    per_verb = config.get(key + "s") or {}
    for name in (verb, verb.split()[0]):
        if name in per_verb:
            return per_verb[name]
    return config.get(key, default)


def verb_mode(config: dict[str, Any], verb: str) -> str:
    """The fault for this verb. The global `mode` keeps the meaning it had before `modes` existed: hang,
    unavailable and slow hit every verb, the others only `submit` (and notfound-template the template verbs),
    so a test that breaks submit's output still gets past the lookups that precede a submit."""
    mode = str(verb_setting(config, "mode", verb, "normal"))
    if any(name in (config.get("modes") or {}) for name in (verb, verb.split()[0])):
        return mode
    if mode in ("hang", "unavailable", "slow") or verb == "submit":
        return mode
    return mode if mode == "notfound-template" and verb.startswith("template") else "normal"


def main(argv: list[str], state: str | None = None) -> int:
    folder = Path(state or os.environ["FAKE_ARGO_STATE"])
    config = json.loads((folder / "config.json").read_text())
    record(folder, argv)
    verb = find_verb(argv)
    if verb is None:
        print("argo is the command line interface to Argo\n\nUsage:\n  argo [flags]\n  argo [command]")
        return 0
    if verb not in HANDLERS:
        word = verb.split()[-1]
        if word in REAL_COMMANDS:
            print(f"fake argo: `{verb}` is not modelled", file=sys.stderr)
            return 2
        parent = "argo template" if verb.startswith("template ") else "argo"
        print(f'Error: unknown command "{word}" for "{parent}"\nRun \'{parent} --help\' for usage.', file=sys.stderr)
        return 1
    mode = verb_mode(config, verb)
    delay = float(verb_setting(config, "delay", verb, 0) or (2.0 if mode == "slow" else 0))
    time.sleep(delay)
    try:
        args = parse_args(verb, argv)
        if args.flag("help"):
            print(_usage(verb), end="")
            return 0
        for flag in COMMANDS[verb][1]:
            if not flag.modelled and args.has(flag.name) and flag.kind != "bool":
                raise fail(f"fake argo: {verb} --{flag.name} is not modelled", 2)
        if mode == "hang":
            time.sleep(3600)
            return 1
        return HANDLERS[verb](Run(folder, config, args, mode))
    except Exit as stop:
        return stop.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
