"""`envbot check`: the on-call's first command. Every line is proven, not assumed; any failure exits 1.

Lines read `<what>: ok (…)`, `<what>: warning: …` or `<what>: FAILED: …`.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TextIO

from slackbot.argo_cli import ArgoCliOrchestrator
from slackbot.audit import check_appendable
from slackbot.errors import ConfigError, EnvbotError
from slackbot.history import fold
from slackbot.orchestrator import RECIPES_TEMPLATE, TEMPLATE_PARAMETERS, Scope
from slackbot.policy import Policy, english_list, load_policy
from slackbot.retention import RecordRetention
from slackbot.settings import Settings
from slackbot.spec import EnvironmentSpec
from slackbot.wiring import build_orchestrator

ARGO_FLOOR = (3, 6, 0)
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")

Status = Literal["ok", "warning", "FAILED"]


@dataclass(frozen=True)
class Result:
    what: str
    status: Status
    detail: str

    def line(self) -> str:
        return (
            f"{self.what}: ok ({self.detail})" if self.status == "ok" else f"{self.what}: {self.status}: {self.detail}"
        )


def ok(what: str, detail: str) -> Result:
    return Result(what, "ok", detail)


def failed(what: str, detail: str) -> Result:
    return Result(what, "FAILED", detail)


def warning(what: str, detail: str) -> Result:
    return Result(what, "warning", detail)


def run_checks(settings: Settings, out: TextIO) -> int:
    from slackbot.slack.checks import slack_checks  # Slack's SDK loads only here

    worst = 0
    policy: Policy | None = None
    results: list[Iterator[Result]] = [
        iter([ok("settings", f"argo namespace {settings.argo_namespace}, timeout {settings.argo_timeout:g}s")])
    ]
    try:
        policy = load_policy(settings.envbot_policy)
        results.append(policy_checks(policy, settings.envbot_policy))
    except ConfigError as error:
        results.append(iter([failed("policy", error.user_message)]))
    results.append(audit_checks(settings.envbot_audit_file))
    results.append(message_checks(settings))
    results.append(slack_checks(settings))
    results.append(argo_checks(settings, policy))
    for group in results:
        for result in group:  # printed as each is proven, so a hang shows where it is
            out.write(result.line() + "\n")
            out.flush()
            worst = max(worst, 1 if result.status == "FAILED" else 0)
    return worst


def policy_checks(policy: Policy, path: Path | None) -> Iterator[Result]:
    catalog = "any service" if policy.services is None else f"{len(policy.services)} services"
    yield ok("policy", f"{path or 'built-in defaults'}; {catalog}; quota {policy.quotas.per_user} per user")
    if policy.channels is not None and not policy.channels:
        yield warning("policy", "channels: [] switches envbot off in every channel")
    if policy.services is not None and not policy.services:
        yield warning("policy", "services: {} leaves nothing to create")
    if not policy.admins and not policy.oncall_groups:
        yield warning("policy", "no admins or oncall_groups: only an environment's owner can extend or destroy it")


def message_checks(settings: Settings) -> Iterator[Result]:
    """With notices off the bot keeps environments' channel messages from the view's reads (ADR 0009)."""
    if settings.slack_threads and settings.env_view_refresh == 0:
        yield warning(
            "environment messages",
            "ENV_VIEW_REFRESH=0: with notices off in the execution plane, environments' channel messages are "
            "never updated after the request (set ENV_VIEW_REFRESH, e.g. 30, or turn notices on)",
        )


def audit_checks(path: Path | None) -> Iterator[Result]:
    if path is None:
        yield ok("audit", "stdout only; ENVBOT_AUDIT_FILE is not set")
        return
    try:
        check_appendable(path)
    except ConfigError as error:
        yield failed("audit", error.user_message)
        return
    yield ok("audit", f"{path} is appendable")


def argo_checks(settings: Settings, policy: Policy | None) -> Iterator[Result]:
    orchestrator = build_orchestrator(settings)
    try:
        versions = orchestrator.version()
    except EnvbotError as error:
        yield failed("argo cli", error.user_message)
        return
    yield from _version_results(versions)
    reachable = True
    for name, passed in TEMPLATE_PARAMETERS.items():
        result = _template_result(orchestrator, name, passed)
        reachable = reachable and result.status == "ok"
        yield result
    yield _recipes_result(orchestrator)
    if not reachable:
        return
    yield _submit_result(orchestrator, settings.argo_namespace)
    if settings.argo_previous_namespace is not None:
        yield _previous_namespace_result(orchestrator, settings.argo_previous_namespace)
    if policy is not None:
        yield _records_result(orchestrator, policy)
        yield _quotas_result(orchestrator, policy)


def _version_results(text: str) -> Iterator[Result]:
    lines = text.splitlines() or ["(nothing)"]
    for line in lines:
        what = "argo server" if "server" in line.split(":")[0] else "argo cli"
        match = _VERSION.search(line)
        if match is None:
            yield failed(what, f"could not read a version from `{line[:80]}`")
            continue
        found = tuple(int(part) for part in match.groups())
        floor = ".".join(map(str, ARGO_FLOOR))
        if found < ARGO_FLOOR:
            yield failed(what, f"{match.group(0)} is older than the supported floor v{floor} (see docs/install.md)")
        else:
            yield ok(what, f"{match.group(0)}, floor v{floor}")
    if not any("server" in line.split(":")[0] for line in lines):
        yield ok("argo server", "kube mode: argo talks to the Kubernetes API directly, there is no argo-server to ask")


def _template_result(orchestrator: ArgoCliOrchestrator, name: str, passed: tuple[str, ...]) -> Result:
    try:
        info = orchestrator.template(name)
    except EnvbotError as error:
        return failed(f"template {name}", error.user_message)
    missing = [p for p in passed if p not in info.parameters]
    required = [p for p, needed in info.parameters.items() if needed and p not in passed]
    if missing:
        return failed(f"template {name}", f"does not declare {english_list(missing)}, which envbot passes")
    if required:
        return failed(f"template {name}", f"requires {english_list(required)}, which envbot does not pass")
    # Intent only (ADR 0007): a parameter envbot never passes is a knob anyone who submits could turn.
    extra = [p for p in info.parameters if p not in passed]
    if extra:
        return failed(
            f"template {name}",
            f"declares {english_list(extra)}, which envbot never passes: an older template that takes guard rails "
            "as parameters; re-apply argo/ and create ConfigMap envbot-services (docs/install.md)",
        )
    return ok(f"template {name}", f"installed in namespace {orchestrator.namespace} with every parameter envbot passes")


def _recipes_result(orchestrator: ArgoCliOrchestrator) -> Result:
    """The platform team's recipe template (docs/adr/0013): created once at install, outside argo/'s
    kustomization; the create and deploy templates reference it, so without it Argo refuses them all."""
    what = f"template {RECIPES_TEMPLATE}"
    try:
        orchestrator.template(RECIPES_TEMPLATE)
    except EnvbotError as error:
        calls = "The create and deploy templates call it: Argo refuses them without it."
        return failed(what, f"{error.user_message} {calls}")
    return ok(what, f"installed in namespace {orchestrator.namespace} (recipes of kind `workflow`, docs/deploy.md)")


def _submit_result(orchestrator: ArgoCliOrchestrator, namespace: str) -> Result:
    probe = EnvironmentSpec(
        env_name="envbot-check", service="envbot-check", expires_at=datetime.now(UTC) + timedelta(minutes=15)
    )
    try:
        orchestrator.probe_submit(probe)
    except EnvbotError as error:
        return failed("argo submit", error.user_message)
    return ok(
        "argo submit", f"a server-side dry run of env-create-template in {namespace} was accepted; nothing created"
    )


def _previous_namespace_result(orchestrator: ArgoCliOrchestrator, previous: str) -> Result:
    """ARGO_PREVIOUS_NAMESPACE (docs/adr/0014): readable, and still needed while environments created
    there before the upgrade have not ended."""
    what = "previous namespace"
    try:
        old = orchestrator.history_in(previous, Scope())
        envs = fold([*orchestrator.history_in(orchestrator.namespace, Scope()), *old])
    except EnvbotError as error:
        return failed(
            what,
            f"could not read history in {previous} ({error.user_message}); the upgrade lets the bot read there "
            "(Role envbot-history-reader, argo/upgrade/to-own-namespace.sh)",
        )
    now, created_there = datetime.now(UTC), {r.name for r in old}
    ongoing = sorted(
        n for n, e in envs.items() if e.create.name in created_there and e.state(now) in ("live", "destroying")
    )
    if not ongoing:
        return warning(
            what,
            f"no environment created in {previous} before the upgrade is left: unset ARGO_PREVIOUS_NAMESPACE and "
            f"delete Role and RoleBinding envbot-history-reader in {previous} (docs/install.md, Upgrading)",
        )
    shown = english_list([f"`{n}`" for n in ongoing[:5]]) + (
        f" and {len(ongoing) - 5} more" if len(ongoing) > 5 else ""
    )
    return ok(
        what, f"history is also read (read-only) in {previous} for {len(ongoing)} environment(s) created there: {shown}"
    )


def _records_result(orchestrator: ArgoCliOrchestrator, policy: Policy) -> Result:
    retention = RecordRetention(orchestrator, policy)
    try:
        problem = retention.problem()
    except EnvbotError as error:
        return failed("records", error.user_message)
    if problem is not None:
        return failed("records", problem)
    return ok("records", retention.summary())


def _quotas_result(orchestrator: ArgoCliOrchestrator, policy: Policy) -> Result:
    """The policy's quotas against the limits the execution plane enforced (docs/adr/0011)."""
    try:
        plane = orchestrator.plane_limits()
    except EnvbotError as error:
        return failed("quotas", error.user_message)
    if plane is None:
        return warning(
            "quotas",
            "no finished create has reported the execution plane's limits yet, so they could not be compared "
            "with the policy; run `envbot check` again after the first create",
        )
    problems = []
    for what, setting, mine, theirs in (
        ("per_user", "max_environments_per_user", policy.quotas.per_user, plane.per_user),
        ("per_channel", "max_environments_per_channel", policy.quotas.per_channel, plane.per_channel),
    ):
        if mine != theirs:
            said = "no limit" if theirs is None else str(theirs)
            wanted = "remove it" if mine is None else f'set it to "{mine}"'
            problems.append(
                f"the policy's quotas.{what} is {mine if mine is not None else 'not set'} but envbot-settings "
                f"{setting} is {said} ({wanted}, or change the policy)"
            )
    seen = f"as reported by {plane.workflow}"
    if problems:
        guarantee = "" if plane.per_user is not None else "; without a plane limit, two replicas can exceed the quota"
        return warning("quotas", "; ".join(problems) + f" ({seen}){guarantee}")
    channel = f", {plane.per_channel} per channel" if plane.per_channel is not None else ""
    return ok("quotas", f"{plane.per_user} per user{channel}, the same in the policy and the execution plane ({seen})")
