"""The port to the execution plane. The bot submits intent and reads history; nothing else."""

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from slackbot.spec import Action, DestroyRequest, EnvironmentSpec

CREATE_TEMPLATE = "env-create-template"
DESTROY_TEMPLATE = "env-destroy-template"
EXTEND_TEMPLATE = "env-extend-template"


class Submission(BaseModel):
    """A workflow the execution plane accepted (or, in a dry run, would have)."""

    model_config = ConfigDict(frozen=True)
    workflow_name: str
    dry_run: bool = False


class WorkflowRecord(BaseModel):
    """One past submission, as the execution plane remembers it."""

    model_config = ConfigDict(frozen=True)
    name: str
    action: Action
    env_name: str
    service: str | None = None
    requested_by: str | None = None
    channel: str | None = None
    created_at: datetime
    phase: str = ""
    expires_at: datetime | None = None


class EnvironmentOrchestrator(Protocol):
    """What the core needs from the execution plane; ArgoCliOrchestrator is the real one."""

    namespace: str

    def create(self, spec: EnvironmentSpec) -> Submission: ...

    def destroy(self, request: DestroyRequest) -> Submission: ...

    def history(
        self,
        *,
        env_names: tuple[str, ...] = (),
        requested_by: str | None = None,
        channel: str | None = None,
        action: Action | None = None,
    ) -> list[WorkflowRecord]:
        """Submissions matching every given filter (read-only)."""
        ...

    def version(self) -> str: ...
