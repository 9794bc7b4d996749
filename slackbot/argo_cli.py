"""EnvironmentOrchestrator backed by the `argo` CLI: the only module in envbot that runs a process."""

import itertools
import json
import logging
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from slackbot.clock import rfc3339
from slackbot.errors import OrchestratorError
from slackbot.orchestrator import CREATE_TEMPLATE, DESTROY_TEMPLATE, Submission, WorkflowRecord
from slackbot.spec import Action, DestroyRequest, EnvironmentSpec

log = logging.getLogger(__name__)

LABEL_ENV = "envbot.dev/env"
LABEL_ACTION = "envbot.dev/action"
LABEL_SERVICE = "envbot.dev/service"
LABEL_REQUESTED_BY = "envbot.dev/requested-by"
LABEL_CHANNEL = "envbot.dev/channel"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "envbot"

_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_WORKFLOW_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?")
_GRPC_CODE = re.compile(r"code = (\w+) desc = (.*)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
DRY_RUN_NAME = "(dry run: not submitted)"


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[list[str], float], Completed]


def run_process(argv: list[str], timeout: float) -> Completed:
    """Run argv without a shell; on timeout kill the whole process group, never leave it running."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TERM": "dumb"},
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return Completed(proc.returncode, stdout, stderr)


class DryRunRunner:
    """Runs nothing. Remembers each argv so the console can show it, and answers `argo list`
    with the workflows this session would have submitted, so a later destroy finds its create."""

    def __init__(self) -> None:
        self.argvs: list[list[str]] = []
        self._submitted: list[dict[str, Any]] = []

    def __call__(self, argv: list[str], timeout: float) -> Completed:
        self.argvs.append(argv)
        verb = argv[1]
        if verb == "submit":
            self._submitted.append(_dry_workflow(argv, len(self._submitted)))
            return Completed(0, f"{DRY_RUN_NAME}\n", "")
        if verb == "version":
            return Completed(0, "argo: (dry run)\n", "")
        return Completed(0, json.dumps(self._submitted), "")


def _dry_workflow(argv: list[str], sequence: int) -> dict[str, Any]:
    flags = list(itertools.pairwise(argv))
    labels = dict(term.split("=", 1) for flag, value in flags if flag == "-l" for term in value.split(","))
    params = [dict(zip(("name", "value"), value.split("=", 1), strict=True)) for flag, value in flags if flag == "-p"]
    created = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=sequence)
    return {
        "metadata": {"name": DRY_RUN_NAME, "labels": labels, "creationTimestamp": rfc3339(created)},
        "spec": {"arguments": {"parameters": params}},
    }


class ArgoCliOrchestrator:
    def __init__(
        self,
        argo_bin: str,
        namespace: str,
        timeout: float,
        runner: Runner = run_process,
    ) -> None:
        self.argo_bin = argo_bin
        self.namespace = namespace
        self.timeout = timeout
        self.runner = runner
        self.dry_run = isinstance(runner, DryRunRunner)

    # --- intent ---------------------------------------------------------------------------------

    def create(self, spec: EnvironmentSpec) -> Submission:
        params = {"env_name": spec.env_name, "service": spec.service, "expires_at": spec.expires_at_text}
        params |= _present(requested_by=spec.requested_by, slack_channel=spec.slack_channel)
        labels = _labels(spec.env_name, "create", spec.service, spec.requested_by, spec.slack_channel)
        return self._submit(CREATE_TEMPLATE, params, labels)

    def destroy(self, request: DestroyRequest) -> Submission:
        params = {"env_name": request.env_name} | _present(requested_by=request.requested_by)
        labels = _labels(request.env_name, "destroy", None, request.requested_by, None)
        return self._submit(DESTROY_TEMPLATE, params, labels)

    def _submit(self, template: str, params: dict[str, str], labels: dict[str, str]) -> Submission:
        argv = [self.argo_bin, "submit", "--from", f"workflowtemplate/{template}", "-n", self.namespace]
        for key, value in params.items():
            argv += ["-p", f"{key}={value}"]
        argv += ["-l", _selector(labels), "-o", "name"]
        result = self._run(argv, template)
        name = result.stdout.strip()
        if not _WORKFLOW_NAME.fullmatch(name) and not (self.dry_run and name == DRY_RUN_NAME):
            shown = "nothing" if not name else "output that is not a workflow name"
            raise OrchestratorError(
                f"argo exited successfully but printed {shown}, so I can't tell which workflow "
                f"was submitted. Check with `argo list -n {self.namespace} -l {LABEL_ENV}="
                f"{params['env_name']}` before retrying."
            )
        return Submission(workflow_name=name, dry_run=self.dry_run)

    # --- reads ----------------------------------------------------------------------------------

    def history(
        self,
        *,
        env_names: tuple[str, ...] = (),
        requested_by: str | None = None,
        channel: str | None = None,
        action: Action | None = None,
    ) -> list[WorkflowRecord]:
        terms = [f"{LABEL_MANAGED_BY}={MANAGED_BY}"]
        names = sorted(set(env_names))
        if len(names) == 1:
            terms.append(f"{LABEL_ENV}={names[0]}")
        elif names:
            terms.append(f"{LABEL_ENV} in ({','.join(names)})")
        for key, value in ((LABEL_REQUESTED_BY, requested_by), (LABEL_CHANNEL, channel), (LABEL_ACTION, action)):
            if value:
                terms.append(f"{key}={_label_value(value)}")
        argv = [self.argo_bin, "list", "-n", self.namespace, "-l", ",".join(terms), "-o", "json"]
        result = self._run(argv, None)
        try:
            items = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            raise OrchestratorError("argo list printed something that is not JSON; is ARGO_BIN really argo?") from None
        return [record for item in items or [] if (record := _record(item)) is not None]

    def version(self) -> str:
        result = self._run([self.argo_bin, "version", "--short"], None)
        return result.stdout.strip().splitlines()[0] if result.stdout.strip() else "unknown"

    # --- the one place a process runs -----------------------------------------------------------

    def _run(self, argv: list[str], template: str | None) -> Completed:
        log.info("running %s", shlex.join(argv))
        try:
            result = self.runner(argv, self.timeout)
        except FileNotFoundError:
            raise OrchestratorError(
                f"The argo CLI was not found (ARGO_BIN={self.argo_bin}). Ask an operator to install it "
                "or to point ARGO_BIN at it."
            ) from None
        except PermissionError:
            raise OrchestratorError(f"The argo CLI at {self.argo_bin} is not executable.") from None
        except subprocess.TimeoutExpired:
            raise OrchestratorError(
                f"argo did not answer within {self.timeout:g} s and was stopped. The request may or may "
                "not have reached the cluster; check the workflow list before retrying."
            ) from None
        if result.returncode != 0:
            raise OrchestratorError(self._explain(result, template))
        return result

    def _explain(self, result: Completed, template: str | None) -> str:
        stderr = _ANSI.sub("", result.stderr).strip()
        log.warning("argo exited %s: %s", result.returncode, stderr[:2000])
        match = _GRPC_CODE.search(stderr)
        code, desc = (match.group(1), match.group(2).strip()) if match else ("", "")
        if code == "NotFound" and template and template in desc:
            return (
                f"WorkflowTemplate {template} is not installed in namespace {self.namespace}. "
                "Ask an operator to apply argo/workflowtemplates/ (see docs/install.md)."
            )
        if code == "InvalidArgument":
            return f"Argo refused the request as invalid: {_first_line(desc)}"
        if code in ("Unavailable", "DeadlineExceeded") or "level=fatal" in stderr:
            return (
                "argo could not reach the cluster or the Argo server. Try again shortly; "
                "if it persists, page the platform on-call."
            )
        if code == "PermissionDenied" or "forbidden" in stderr:
            return f"envbot's service account may not do this in namespace {self.namespace} (RBAC)."
        detail = _first_line(desc or stderr) or "no error text"
        return f"argo failed (exit {result.returncode}): {detail}"


def _present(**values: str | None) -> dict[str, str]:
    return {key: value for key, value in values.items() if value}


def _labels(env: str, action: str, service: str | None, user: str | None, channel: str | None) -> dict[str, str]:
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ENV: env, LABEL_ACTION: action}
    labels |= _present(**{LABEL_SERVICE: service, LABEL_REQUESTED_BY: user, LABEL_CHANNEL: channel})
    return {key: _label_value(value) for key, value in labels.items()}


def _label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise OrchestratorError(f"`{value}` cannot be used as a Kubernetes label value.")
    return value


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in labels.items())


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


def _record(item: dict[str, Any]) -> WorkflowRecord | None:
    metadata = item.get("metadata") or {}
    labels = metadata.get("labels") or {}
    params = {
        p.get("name"): p.get("value") for p in ((item.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    }
    action = labels.get(LABEL_ACTION)
    if action not in ("create", "destroy") or not labels.get(LABEL_ENV):
        return None
    return WorkflowRecord(
        name=metadata.get("name", ""),
        action=action,
        env_name=labels[LABEL_ENV],
        service=labels.get(LABEL_SERVICE),
        requested_by=labels.get(LABEL_REQUESTED_BY),
        channel=labels.get(LABEL_CHANNEL),
        created_at=_instant(metadata.get("creationTimestamp")) or datetime(1970, 1, 1, tzinfo=UTC),
        phase=(item.get("status") or {}).get("phase") or "",
        expires_at=_instant(params.get("expires_at")),
    )


def _instant(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
