"""What the bot asks the execution plane for. Validated on construction, immutable afterwards."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from slackbot.clock import rfc3339
from slackbot.commands import EnvName, ServiceName, Target
from slackbot.durations import format_duration
from slackbot.idempotency import RequestKey
from slackbot.names import ChannelId, MessageTs, UserId, WorkflowName


def _whole_utc_seconds(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return value.astimezone(UTC).replace(microsecond=0)


Instant = Annotated[datetime, AfterValidator(_whole_utc_seconds)]
Action = Literal["create", "extend", "deploy", "destroy"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Actor(_Frozen):
    """Who typed the command, and where. Slack ids only, trusted after signature checks."""

    user_id: UserId
    channel_id: ChannelId | None = None


class Notices(_Frozen):
    """What the execution plane needs to warn before expiry (see docs/adr/0005)."""

    warn_before: tuple[timedelta, ...] = ()
    extend_choices: tuple[timedelta, ...] = ()
    latest_expiry: Instant | None = None  # creation + the policy's lifetime
    warn_owner_by_dm: bool = False  # warnings also go to the owner by DM (docs/adr/0009)

    @property
    def warn_before_text(self) -> str:
        return ",".join(str(int(lead.total_seconds())) for lead in self.warn_before)

    @property
    def extend_choices_text(self) -> str:
        return ",".join(format_duration(choice) for choice in self.extend_choices)

    @property
    def latest_expiry_text(self) -> str:
        return rfc3339(self.latest_expiry) if self.latest_expiry else ""


# A Kubernetes user name (e.g. an OIDC username) and a ClusterRole: what the requester is given inside
# the environment. The execution plane checks both again (the role against the service's access.roles).
KubeUser = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9@._:+-]{0,252}$")]
RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9:.]{0,61}[a-z0-9])?$")]


class Access(_Frozen):
    """Access for the requester: a RoleBinding in the environment for `user` to ClusterRole `role`."""

    user: KubeUser
    role: RoleName


class EnvironmentSpec(_Frozen):
    """An environment to create: one namespace, with an owner and an expiry."""

    env_name: EnvName
    service: ServiceName
    expires_at: Instant
    requested_by: UserId | None = None
    slack_channel: ChannelId | None = None
    # The create workflow of an earlier, ended environment of the same name: history says which came first.
    replaces: WorkflowName | None = None
    notices: Notices = Notices()
    request: RequestKey | None = None  # the Slack request's key: names the workflow (docs/adr/0011)
    slack_thread: MessageTs | None = None  # the environment's channel message; notices thread under it (ADR 0009)
    target: Target = Target()  # what its deploy step deploys (docs/adr/0008)
    access: Access | None = None  # the requester's own access, when the policy maps them (docs/deploy.md)

    @property
    def expires_at_text(self) -> str:
        return rfc3339(self.expires_at)


class Lineage(_Frozen):
    """Which environment a later workflow acts on, so history can be folded from facts, not timestamps."""

    owner: UserId | None = None
    channel: ChannelId | None = None
    service: ServiceName | None = None
    incarnation: WorkflowName | None = None  # the create workflow of the environment acted on
    after: WorkflowName | None = None  # the newest workflow of that environment when the decision was made
    thread: MessageTs | None = None  # the environment's channel message (from its create)


class ExtendRequest(_Frozen):
    env_name: EnvName
    expires_at: Instant
    requested_by: UserId
    lineage: Lineage
    notices: Notices = Notices()
    request: RequestKey | None = None

    @property
    def expires_at_text(self) -> str:
        return rfc3339(self.expires_at)


class DeployRequest(_Frozen):
    """Deploy another version of a live environment's service (the same recipe, another target)."""

    env_name: EnvName
    service: ServiceName
    requested_by: UserId
    lineage: Lineage
    target: Target = Target()
    request: RequestKey | None = None  # the Slack request's key: names the workflow (docs/adr/0011)


class DestroyRequest(_Frozen):
    env_name: EnvName
    requested_by: UserId | None = None
    lineage: Lineage = Lineage()
    request: RequestKey | None = None
