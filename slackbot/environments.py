"""Environments as the execution plane's history describes them (owner, expiry, liveness)."""

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from slackbot.orchestrator import WorkflowRecord

FAILED_PHASES = frozenset({"Failed", "Error"})


class Environment(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    service: str | None
    owner: str | None
    channel: str | None
    expires_at: datetime | None
    create_phase: str
    destroyed: bool

    def is_live(self, now: datetime) -> bool:
        """Created (not failed), not destroyed, not yet expired: what counts against a quota."""
        if self.destroyed or self.create_phase in FAILED_PHASES:
            return False
        return self.expires_at is None or self.expires_at > now


def environments(records: Iterable[WorkflowRecord]) -> dict[str, Environment]:
    """Fold workflow history into one Environment per name, from its latest create."""
    # creationTimestamp has whole seconds; within one second, a destroy is taken to follow the create.
    records = sorted(records, key=lambda r: (r.created_at, r.action == "destroy"))
    latest_create: dict[str, WorkflowRecord] = {}
    destroyed_after: dict[str, bool] = {}
    for record in records:
        if record.action == "create":
            latest_create[record.env_name] = record
            destroyed_after[record.env_name] = False
        elif record.env_name in latest_create and record.phase not in FAILED_PHASES:
            destroyed_after[record.env_name] = True  # a failed destroy may have left it standing
    return {
        name: Environment(
            name=name,
            service=create.service,
            owner=create.requested_by,
            channel=create.channel,
            expires_at=create.expires_at,
            create_phase=create.phase,
            destroyed=destroyed_after[name],
        )
        for name, create in latest_create.items()
    }
