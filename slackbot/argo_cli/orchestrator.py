"""EnvironmentOrchestrator backed by the `argo` CLI: submit for intent; list, get and template get to read."""

import errno
import json
import logging
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from slackbot import metrics
from slackbot.argo_cli.dry_run import DryRunRunner
from slackbot.argo_cli.labels import (
    LABEL_ACTION,
    LABEL_AFTER,
    LABEL_CHANNEL,
    LABEL_ENV,
    LABEL_EXPIRES,
    LABEL_INCARNATION,
    LABEL_MANAGED_BY,
    LABEL_OWNER,
    LABEL_REQUEST,
    LABEL_REQUESTED_BY,
    LABEL_SERVICE,
    MANAGED_BY,
    selector,
)
from slackbot.argo_cli.output import (
    NotAWorkflowList,
    WorkflowListReader,
    plane_limits,
    template_info,
    workflow_detail,
)
from slackbot.argo_cli.process import Completed, Interrupted, OutputTooLarge, ProcessRunner, Runner
from slackbot.commands import Target
from slackbot.errors import OrchestratorError
from slackbot.idempotency import workflow_name
from slackbot.orchestrator import (
    CREATE_TEMPLATE,
    DEPLOY_TEMPLATE,
    DESTROY_TEMPLATE,
    EXTEND_TEMPLATE,
    RECIPES_TEMPLATE,
    TEMPLATE_ACTIONS,
    TEMPLATE_PARAMETERS,
    PlaneLimits,
    Scope,
    Submission,
    TemplateInfo,
    WorkflowDetail,
    WorkflowRecord,
)
from slackbot.redaction import redact
from slackbot.spec import DeployRequest, DestroyRequest, EnvironmentSpec, ExtendRequest, Lineage, Notices

log = logging.getLogger(__name__)

_WORKFLOW_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?")
_GRPC_CODE = re.compile(r"code = (\w+) desc = (.*)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ArgoCliOrchestrator:
    def __init__(
        self,
        argo_bin: str,
        namespace: str,
        timeout: float,
        runner: Runner | None = None,
        previous_namespace: str | None = None,
    ) -> None:
        self.argo_bin = argo_bin
        self.namespace = namespace
        # Read-only: history of environments created before the upgrade to envbot's own namespace
        # (ARGO_PREVIOUS_NAMESPACE, docs/adr/0014). Everything is submitted in `namespace`.
        self.previous_namespace = previous_namespace
        self.timeout = timeout
        self.runner: Runner = runner or ProcessRunner()
        self.dry_run = isinstance(runner, DryRunRunner)

    # --- intent ---------------------------------------------------------------------------------

    def create(self, spec: EnvironmentSpec) -> Submission:
        labels = {
            LABEL_ACTION: "create",
            LABEL_SERVICE: spec.service,
            LABEL_OWNER: spec.requested_by,
            LABEL_REQUESTED_BY: spec.requested_by,
            LABEL_CHANNEL: spec.slack_channel,
            LABEL_AFTER: spec.replaces,
            LABEL_EXPIRES: _epoch(spec.expires_at),
        }
        return self._submit(CREATE_TEMPLATE, spec.env_name, _create_params(spec), labels, request=spec.request)

    def extend(self, request: ExtendRequest) -> Submission:
        params = {"env_name": request.env_name, "expires_at": request.expires_at_text}
        params |= _present(requested_by=request.requested_by, slack_channel=request.lineage.channel)
        params |= _present(slack_thread=request.lineage.thread)
        params |= _notices(request.notices)
        labels = _lineage("extend", request.requested_by, request.lineage)
        labels[LABEL_EXPIRES] = _epoch(request.expires_at)
        return self._submit(EXTEND_TEMPLATE, request.env_name, params, labels, request=request.request)

    def deploy(self, request: DeployRequest) -> Submission:
        params = {"env_name": request.env_name, "service": request.service}
        params |= _present(requested_by=request.requested_by, slack_channel=request.lineage.channel)
        params |= _present(slack_thread=request.lineage.thread) | _target(request.target)
        labels = _lineage("deploy", request.requested_by, request.lineage)
        return self._submit(DEPLOY_TEMPLATE, request.env_name, params, labels, request=request.request)

    def destroy(self, request: DestroyRequest) -> Submission:
        params = {"env_name": request.env_name}
        params |= _present(requested_by=request.requested_by, slack_channel=request.lineage.channel)
        params |= _present(slack_thread=request.lineage.thread)
        labels = _lineage("destroy", request.requested_by, request.lineage)
        return self._submit(DESTROY_TEMPLATE, request.env_name, params, labels, request=request.request)

    def probe_submit(self, spec: EnvironmentSpec) -> str:
        """`argo submit --server-dry-run` of a create: proves the bot may submit, and creates nothing."""
        labels: dict[str, str | None] = {LABEL_ACTION: "create", LABEL_SERVICE: spec.service}
        return self._submit(CREATE_TEMPLATE, spec.env_name, _create_params(spec), labels, dry_run=True).workflow_name

    def _submit(
        self,
        template: str,
        env: str,
        params: dict[str, str],
        labels: dict[str, str | None],
        dry_run: bool = False,
        request: str | None = None,
    ) -> Submission:
        unknown = set(params) - set(TEMPLATE_PARAMETERS[template])
        assert not unknown, f"{template} does not declare {unknown}: update TEMPLATE_PARAMETERS and the template"
        all_labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ENV: env} | labels | {LABEL_REQUEST: request}
        argv = [self.argo_bin, "submit", "--from", f"workflowtemplate/{template}", "-n", self.namespace]
        # The request's own name: the API server refuses a second workflow for it (docs/adr/0011).
        argv += ["--name", workflow_name(template, request)] if request else []
        for key, value in params.items():
            argv += ["-p", f"{key}={value}"]
        argv += ["-l", selector(all_labels)] + (["--server-dry-run"] if dry_run else []) + ["-o", "name"]
        result = self._run(argv, "submit", template, check=False)
        if result.returncode != 0:
            if request and _grpc_code(result.stderr) == "AlreadyExists":
                return self._earlier(template, request)
            raise OrchestratorError(self._explain(result, template))
        name = result.stdout.strip()
        if not _WORKFLOW_NAME.fullmatch(name):
            shown = "nothing" if not name else "output that is not a workflow name"
            raise OrchestratorError(
                f"argo exited successfully but printed {shown}, so I can't tell which workflow "
                f"was submitted. Check with `argo list -n {self.namespace} -l {LABEL_ENV}={env}` before retrying.",
                maybe_submitted=True,
            )
        return Submission(workflow_name=name, dry_run=self.dry_run)

    def _earlier(self, template: str, request: str) -> Submission:
        """The request's workflow already exists: answer with it if it really is this request's."""
        name = workflow_name(template, request)
        record = self.workflow(name).record
        action = TEMPLATE_ACTIONS[template]
        if record is None or record.request != request or record.action != action:
            raise OrchestratorError(
                f"Argo already has a workflow named {name} that envbot did not submit for this request, so "
                f"nothing was submitted. Ask an operator to check `argo get -n {self.namespace} {name}`."
            )
        log.info("request %s was already submitted as %s: answering as the first time", request, name)
        return Submission(workflow_name=name, dry_run=self.dry_run, earlier=record)

    # --- reads ----------------------------------------------------------------------------------

    def history(self, scope: Scope) -> list[WorkflowRecord]:
        """One `argo list`; with a previous namespace, a second one there, run alongside, and both merged
        (workflow names are the chain's links, and no name is in both: the upgrade copies no workflow)."""
        if self.previous_namespace is None:
            return self.history_in(self.namespace, scope)
        with ThreadPoolExecutor(max_workers=1) as pool:
            previous = pool.submit(self.history_in, self.previous_namespace, scope)
            records = self.history_in(self.namespace, scope)
            try:
                return records + previous.result()
            except OrchestratorError as error:  # fail closed: a partial history would miscount and misjudge
                raise OrchestratorError(
                    f"Could not read the history from before the upgrade in namespace {self.previous_namespace} "
                    f"(ARGO_PREVIOUS_NAMESPACE), so I did nothing: {error.user_message}"
                ) from None

    def history_in(self, namespace: str, scope: Scope) -> list[WorkflowRecord]:
        terms = {
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_ENV: scope.env_name,
            LABEL_OWNER: scope.owner,
            LABEL_CHANNEL: scope.channel,
        }
        # No --chunk-size: in kube mode argo v3.6/v3.7 counts with the page limit, never returns a
        # continue token and silently stops after the first page (server/workflow/workflow_server.go
        # ListWorkflows). The whole list is read instead, one workflow at a time (WorkflowListReader).
        argv = [self.argo_bin, "list", "-n", namespace, "-l", selector(terms), "-o", "json"]
        reader = WorkflowListReader()
        try:
            self._run(argv, "list", None, on_stdout=reader.feed)
            return reader.finish()
        except NotAWorkflowList as problem:
            raise OrchestratorError(
                f"argo list printed something that is not a JSON list of workflows ({problem}), so I "
                "can't tell what exists and did nothing. Is ARGO_BIN really argo v3.6 or newer?"
            ) from None

    def workflow(self, name: str) -> WorkflowDetail:
        """`argo get`; a workflow not in the namespace may be a record in the previous one."""
        argv = [self.argo_bin, "get", name, "-n", self.namespace, "-o", "json"]
        result = self._run(argv, "get", None, check=self.previous_namespace is None)
        if result.returncode != 0 and self.previous_namespace is not None:
            if _grpc_code(result.stderr) != "NotFound":
                raise OrchestratorError(self._explain(result, None))
            argv = [self.argo_bin, "get", name, "-n", self.previous_namespace, "-o", "json"]
            result = self._run(argv, "get", None)
        return workflow_detail(self._json(result, "argo get"))

    def template(self, name: str) -> TemplateInfo:
        argv = [self.argo_bin, "template", "get", name, "-n", self.namespace, "-o", "json"]
        return template_info(self._json(self._run(argv, "template", name), "argo template get"))

    def plane_limits(self, lookback: int = 5) -> PlaneLimits | None:
        """The quota limits the execution plane enforced in its latest finished creates, which record
        them as the step's `limits` output (the bot cannot read envbot-settings). None: none recorded."""
        terms: dict[str, str | None] = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ACTION: "create"}
        argv = [self.argo_bin, "list", "-n", self.namespace, "-l", selector(terms), "--completed", "-o", "name"]
        listed = self._run(argv, "list", None).stdout.strip()
        names = [] if listed == "No workflows found" else listed.split()  # what printWorkflows says for none
        if any(not _WORKFLOW_NAME.fullmatch(name) for name in names):
            raise OrchestratorError("argo list -o name printed something other than workflow names; relied on nothing.")
        for name in names[:lookback]:  # latest finished first
            get = [self.argo_bin, "get", name, "-n", self.namespace, "-o", "json"]
            found = plane_limits(self._json(self._run(get, "get", None), "argo get"))
            if found is not None:
                return found
        return None

    def version(self) -> str:
        """What `argo version --short` prints: the CLI's version, and the server's in argo-server mode."""
        return self._run([self.argo_bin, "version", "--short"], "version", None).stdout.strip()

    # --- the one place argv reaches the runner ----------------------------------------------------

    def _run(
        self,
        argv: list[str],
        verb: str,
        template: str | None,
        on_stdout: Callable[[str], None] | None = None,
        check: bool = True,
    ) -> Completed:
        if log.isEnabledFor(logging.DEBUG):  # once per call: the argv costs more to format than to run
            log.debug("running %s", shlex.join(argv))
        started = time.monotonic()
        try:
            result = self.runner(argv, self.timeout, on_stdout)
        except BaseException as error:
            metrics.argo_call(verb, time.monotonic() - started, ok=False)
            failure = self._start_failure(error)
            if verb == "submit" and isinstance(failure, OrchestratorError):
                # Stopped mid-submit: the workflow may exist. Anything else failed before argo submitted.
                failure.maybe_submitted = isinstance(error, (subprocess.TimeoutExpired, Interrupted))
            raise failure from None
        metrics.argo_call(verb, time.monotonic() - started, ok=result.returncode == 0)
        if result.returncode != 0 and check:
            raise OrchestratorError(self._explain(result, template))
        return result

    def _start_failure(self, error: BaseException) -> BaseException:
        if isinstance(error, FileNotFoundError):
            return OrchestratorError(
                f"The argo CLI was not found (ARGO_BIN={self.argo_bin}). Ask an operator to install it "
                "or to point ARGO_BIN at it."
            )
        if isinstance(error, PermissionError):
            return OrchestratorError(f"The argo CLI at {self.argo_bin} is not executable.")
        if isinstance(error, OSError) and error.errno == errno.ENOEXEC:
            return OrchestratorError(
                f"ARGO_BIN={self.argo_bin} is not a program this machine can run (exec format error): "
                "is it the argo binary for this CPU and operating system?"
            )
        if isinstance(error, subprocess.TimeoutExpired):
            return OrchestratorError(
                f"argo did not answer within {self.timeout:g} s and was stopped. The request may or may "
                "not have reached the cluster; check the workflow list before retrying."
            )
        if isinstance(error, Interrupted):
            return OrchestratorError(
                "envbot restarted while argo was running and stopped it. The request may or may not have "
                "reached the cluster; check `/env status` before retrying."
            )
        if isinstance(error, OutputTooLarge):
            return OrchestratorError(f"argo printed {error} of output and was stopped; nothing was decided from it.")
        if isinstance(error, OSError):
            return OrchestratorError(f"Could not start argo at {self.argo_bin} ({error.strerror or error}).")
        return error  # not ours to translate (e.g. KeyboardInterrupt)

    def _explain(self, result: Completed, template: str | None) -> str:
        stderr = redact(_ANSI.sub("", result.stderr)).strip()
        log.warning("argo exited %s: %s", result.returncode, stderr[:2000])
        match = _GRPC_CODE.search(stderr)
        code, desc = (match.group(1), match.group(2).strip()) if match else ("", "")
        if code == "NotFound" and template and template in desc:
            # envbot-recipes is created once, apart from argo/'s kustomization (docs/adr/0013).
            fix = f"create it once from argo/settings/{template}.yaml" if template == RECIPES_TEMPLATE else ""
            return (
                f"WorkflowTemplate {template} is not installed in namespace {self.namespace}. "
                f"Ask an operator to {fix or 'apply argo/workflowtemplates/'} (see docs/install.md)."
            )
        if code == "InvalidArgument":
            return f"Argo refused the request as invalid: {_first_line(desc)}"
        if code in ("Unavailable", "DeadlineExceeded") or "level=fatal" in stderr:
            return (
                "argo could not reach the cluster or the Argo server. Try again shortly; "
                "if it persists, page the platform on-call."
            )
        if code == "PermissionDenied" or "forbidden" in stderr.lower():
            return f"envbot's service account may not do this in namespace {self.namespace} (RBAC)."
        detail = _first_line(desc or stderr) or "no error text"
        return f"argo failed (exit {result.returncode}): {detail}"

    def _json(self, result: Completed, what: str) -> dict[str, Any]:
        try:
            value = json.loads(result.stdout)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise OrchestratorError(f"{what} printed something that is not a JSON object, so I relied on nothing.")
        return value


def _grpc_code(stderr: str) -> str:
    match = _GRPC_CODE.search(_ANSI.sub("", stderr))
    return match.group(1) if match else ""


def _present(**values: str | None) -> dict[str, str]:
    return {key: value for key, value in values.items() if value}


def _create_params(spec: EnvironmentSpec) -> dict[str, str]:
    params = {"env_name": spec.env_name, "service": spec.service, "expires_at": spec.expires_at_text}
    params |= _present(requested_by=spec.requested_by, slack_channel=spec.slack_channel)
    params |= _present(slack_thread=spec.slack_thread, warn_owner_dm="true" if spec.notices.warn_owner_by_dm else None)
    if spec.access is not None:
        params |= {"access_user": spec.access.user, "access_role": spec.access.role}
    return params | _notices(spec.notices) | _target(spec.target)


def _target(target: Target) -> dict[str, str]:
    return _present(version=target.version, ref=target.ref, pr=target.pr)


def _epoch(moment: datetime) -> str:
    """An instant as a label value (labels can't hold RFC 3339's colons)."""
    return str(int(moment.timestamp()))


def _notices(notices: Notices) -> dict[str, str]:
    return _present(
        warn_before=notices.warn_before_text,
        extend_choices=notices.extend_choices_text,
        latest_expiry=notices.latest_expiry_text,
    )


def _lineage(action: str, requested_by: str | None, lineage: Lineage) -> dict[str, str | None]:
    return {
        LABEL_ACTION: action,
        LABEL_SERVICE: lineage.service,
        LABEL_OWNER: lineage.owner,
        LABEL_REQUESTED_BY: requested_by,
        LABEL_CHANNEL: lineage.channel,
        LABEL_INCARNATION: lineage.incarnation,
        LABEL_AFTER: lineage.after,
    }


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]
