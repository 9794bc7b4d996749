"""The port to the execution plane. The bot submits intent and reads history; nothing else."""

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from slackbot.spec import Action, DeployRequest, DestroyRequest, EnvironmentSpec, ExtendRequest

CREATE_TEMPLATE = "env-create-template"
DESTROY_TEMPLATE = "env-destroy-template"
EXTEND_TEMPLATE = "env-extend-template"
DEPLOY_TEMPLATE = "env-deploy-template"
TEMPLATES = (CREATE_TEMPLATE, EXTEND_TEMPLATE, DEPLOY_TEMPLATE, DESTROY_TEMPLATE)
# The platform team's own deploy recipe (docs/adr/0013): the bot never submits it; create and deploy call it.
RECIPES_TEMPLATE = "envbot-recipes"
TEMPLATE_ACTIONS = {
    CREATE_TEMPLATE: "create",
    EXTEND_TEMPLATE: "extend",
    DEPLOY_TEMPLATE: "deploy",
    DESTROY_TEMPLATE: "destroy",
}
# The parameters envbot passes to each template: the contract `envbot check` verifies on the cluster.
TEMPLATE_PARAMETERS = {
    CREATE_TEMPLATE: (
        "env_name", "service", "expires_at", "requested_by", "slack_channel", "warn_before", "extend_choices",
        "latest_expiry", "slack_thread", "version", "ref", "pr", "access_user", "access_role", "warn_owner_dm",
    ),
    DEPLOY_TEMPLATE: ("env_name", "service", "requested_by", "slack_channel", "slack_thread", "version", "ref", "pr"),
    EXTEND_TEMPLATE: (
        "env_name", "expires_at", "requested_by", "slack_channel", "warn_before", "extend_choices", "latest_expiry",
        "slack_thread",
    ),
    DESTROY_TEMPLATE: ("env_name", "requested_by", "slack_channel", "slack_thread"),
}  # fmt: skip

FAILED_PHASES = frozenset({"Failed", "Error"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class FailedStep(_Frozen):
    name: str
    message: str


class WorkflowRecord(_Frozen):
    """One past submission, as the execution plane remembers it (labels, parameters, phase)."""

    name: str
    action: Action
    env_name: str
    service: str | None = None
    owner: str | None = None
    requested_by: str | None = None
    channel: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    phase: str = ""
    message: str | None = None
    expires_at: datetime | None = None
    incarnation: str | None = None  # extend/destroy: the create workflow they act on
    after: str | None = None  # the workflow this one followed (a create: the one it replaced)
    request: str | None = None  # the key of the Slack request that submitted it (docs/adr/0011)
    thread: str | None = None  # the ts of the environment's channel message its notices thread under (ADR 0009)
    requested_version: str | None = None  # create/deploy: what was asked for (`1.4.2`, `ref x`, `PR 1`)
    version: str | None = None  # create/deploy: what the deploy step reports it deployed
    url: str | None = None  # create/deploy: where the deployed service answers
    # The execution plane's envbot.dev/notice label (ADR 0005): `skipped` means it announced nothing
    # (notices off), so the bot keeps the environment's channel message (slackbot/roots.py, ADR 0009).
    notice: str | None = None
    warn_before: tuple[int, ...] = ()  # create/extend: seconds before the expiry the owner is warned
    failed_step: FailedStep | None = None  # a failed workflow: the step that failed, and why
    namespace: str | None = None  # where it lives: ARGO_NAMESPACE, or the previous one (ADR 0014)

    @property
    def failed(self) -> bool:
        return self.phase in FAILED_PHASES


class Submission(_Frozen):
    """A workflow the execution plane accepted (or, in a dry run, would have).

    `earlier` is set when the request had already been submitted (by this or another replica): the
    API server refused a second workflow of that name, and this is the first one, as recorded."""

    workflow_name: str
    dry_run: bool = False
    earlier: WorkflowRecord | None = None


class WorkflowDetail(_Frozen):
    """`argo get`: the workflow plus, when it failed, the step that failed and why."""

    record: WorkflowRecord | None
    failed_step: FailedStep | None = None


class TemplateInfo(_Frozen):
    """What an installed WorkflowTemplate declares, for `envbot check` and the record-retention check."""

    name: str
    parameters: dict[str, bool]  # name -> required (no value of its own)
    retention_seconds: int | None  # the shorter of ttlStrategy's success/failure/completion, if set


class PlaneLimits(_Frozen):
    """The quota limits a create step of the execution plane enforced (its `limits` output): None means none."""

    workflow: str
    finished_at: datetime | None = None
    per_user: int | None = None
    per_channel: int | None = None


class Scope(_Frozen):
    """Which part of history a decision needs; every given field narrows it (labels, not filtering)."""

    env_name: str | None = None
    owner: str | None = None
    channel: str | None = None

    @property
    def everything(self) -> bool:
        return self.env_name is None and self.owner is None and self.channel is None


class EnvironmentOrchestrator(Protocol):
    """What the core needs from the execution plane; ArgoCliOrchestrator is the real one."""

    namespace: str
    dry_run: bool

    def create(self, spec: EnvironmentSpec) -> Submission: ...

    def extend(self, request: ExtendRequest) -> Submission: ...

    def deploy(self, request: DeployRequest) -> Submission: ...

    def destroy(self, request: DestroyRequest) -> Submission: ...

    def history(self, scope: Scope) -> list[WorkflowRecord]:
        """envbot's workflows in `scope` (read-only). Raises OrchestratorError rather than guess."""
        ...

    def workflow(self, name: str) -> WorkflowDetail: ...

    def template(self, name: str) -> TemplateInfo: ...

    def version(self) -> str: ...
