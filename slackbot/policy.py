"""Who may do what: service catalog, TTL bounds, admins, on-call groups, quotas, channels, notices.

The policy is read once at start-up from the YAML file named by ENVBOT_POLICY and is immutable
afterwards. Without a file the documented defaults apply, so existing deployments keep working.
"""

import difflib
import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from slackbot.commands import EnvName, ServiceName
from slackbot.durations import format_duration, parse_duration
from slackbot.errors import ConfigError, PolicyDenied, UsageError
from slackbot.names import ChannelId, GroupId, UserId, reserved_reason
from slackbot.spec import Access, KubeUser, Notices, RoleName


def _duration(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"{value} is not a duration; write one with units, such as 4h or 30m")
    if isinstance(value, int | float):
        raise ValueError(f"{value} is a bare number; write a duration with units, such as {value}m or 4h")
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(str(exc).replace("`", "'")) from None
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration), PlainSerializer(format_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TtlPolicy(_Model):
    default: Duration = timedelta(hours=4)
    min: Duration = timedelta(minutes=15)
    max: Duration = timedelta(days=7)
    # The longest an environment may live, counted from its creation, extensions included.
    lifetime: Duration = timedelta(days=14)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        order = [("min", self.min), ("default", self.default), ("max", self.max), ("lifetime", self.lifetime)]
        if self.min < timedelta(minutes=1):
            raise ValueError(f"min is {format_duration(self.min)}; it must be at least 1m")
        for (low_name, low), (high_name, high) in itertools.pairwise(order):
            if low > high:
                raise ValueError(
                    f"{low_name} ({format_duration(low)}) is longer than {high_name} ({format_duration(high)}); "
                    "they must satisfy min <= default <= max <= lifetime"
                )
        return self


class ServicePolicy(_Model):
    description: str | None = Field(default=None, max_length=200)
    access_role: RoleName | None = None  # the requester's role in this service's environments
    default_ttl: Duration | None = None
    max_ttl: Duration | None = None
    channels: tuple[ChannelId, ...] | None = None


class AccessPolicy(_Model):
    """Access for the requester (off unless configured): whom each Slack user is in Kubernetes, and the
    ClusterRole they get inside their environments (the execution plane allows only the service's access.roles)."""

    role: RoleName = "view"
    users: dict[UserId, KubeUser] = {}


class QuotaPolicy(_Model):
    per_user: int = Field(default=10, ge=1, le=1000)
    per_channel: int | None = Field(default=None, ge=1, le=10000)


class NoticePolicy(_Model):
    # Warnings before expiry; each is scaled down for environments whose TTL is shorter than it.
    warn_before: tuple[Duration, ...] = Field(default=(timedelta(hours=1), timedelta(minutes=10)), max_length=10)
    # The Extend buttons offered on replies and warnings (only those the policy allows are shown).
    extend_choices: tuple[Duration, ...] = Field(default=(timedelta(hours=2), timedelta(days=1)), max_length=4)
    # Warnings also go to the owner by direct message (they always go into the environment's thread).
    warn_owner_by_dm: bool = False


class Policy(_Model):
    ttl: TtlPolicy = TtlPolicy()
    services: dict[ServiceName, ServicePolicy] | None = None
    admins: tuple[UserId, ...] = ()
    oncall_groups: tuple[GroupId, ...] = ()
    quotas: QuotaPolicy = QuotaPolicy()
    channels: tuple[ChannelId, ...] | None = None
    reserved_names: tuple[EnvName, ...] = ()
    notices: NoticePolicy = NoticePolicy()
    access: AccessPolicy | None = None

    @model_validator(mode="after")
    def _service_ttls_within_bounds(self) -> Self:
        for name, service in (self.services or {}).items():
            for field in ("default_ttl", "max_ttl"):
                value = getattr(service, field)
                if value is not None and not self.ttl.min <= value <= self.ttl.max:
                    raise ValueError(f"services.{name}.{field} must lie within ttl.min..ttl.max")
            if service.default_ttl and service.max_ttl and service.default_ttl > service.max_ttl:
                raise ValueError(f"services.{name}.default_ttl is longer than its max_ttl")
        return self

    # --- decisions that need no I/O -------------------------------------------------------------

    def check_channel(self, channel_id: str | None) -> None:
        if self.channels is not None and channel_id not in self.channels:
            raise PolicyDenied(f"envbot is not enabled in this channel. Use it in {_channels(self.channels)}.")

    def service(self, service: str, channel_id: str | None) -> ServicePolicy:
        """The catalog entry for `service`, checking it exists and may be used from this channel."""
        if self.services is None:
            return ServicePolicy()
        entry = self.services.get(service)
        if entry is None:
            known = ", ".join(f"`{s}`" for s in sorted(self.services)) or "none"
            close = difflib.get_close_matches(service, list(self.services), n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise UsageError(f"`{service}` is not in the service catalog.{hint} Known services: {known}.")
        if entry.channels is not None and channel_id not in entry.channels:
            raise PolicyDenied(f"`{service}` environments can only be requested in {_channels(entry.channels)}.")
        return entry

    def rules_for(self, service: str | None) -> ServicePolicy:
        """The catalog entry, without channel checks (for acting on an existing environment)."""
        return (self.services or {}).get(service or "") or ServicePolicy()

    def longest_ttl(self, service: ServicePolicy) -> timedelta:
        return service.max_ttl or self.ttl.max

    def resolve_ttl(self, service: ServicePolicy, requested: timedelta | None, topic: str = "create") -> timedelta:
        longest = self.longest_ttl(service)
        ttl = requested if requested is not None else service.default_ttl or self.ttl.default
        if not self.ttl.min <= ttl <= longest:
            raise UsageError(
                f"ttl {format_duration(ttl)} is out of bounds: choose between "
                f"{format_duration(self.ttl.min)} and {format_duration(longest)}.",
                topic=topic,
            )
        return ttl

    def latest_expiry(self, created_at: datetime) -> datetime:
        return created_at + self.ttl.lifetime

    def extend_choices(
        self, service: str | None, created_at: datetime, now: datetime, expires_at: datetime | None = None
    ) -> tuple[timedelta, ...]:
        """The Extend buttons worth offering now: within the TTL bounds and the lifetime, and (an
        extend sets the expiry to now + ttl) only those that move the expiry later."""
        room = self.latest_expiry(created_at) - now
        left = expires_at - now if expires_at is not None else timedelta()
        return tuple(choice for choice in self._allowed_choices(service) if left < choice <= room)

    def longer_ttl(
        self, service: str | None, created_at: datetime, now: datetime, expires_at: datetime
    ) -> timedelta | None:
        """The shortest ttl an extend could ask for now that adds time (an offered choice if one fits,
        else the longest allowed); None when nothing the policy allows would."""
        choices = self.extend_choices(service, created_at, now, expires_at)
        if choices:
            return min(choices)
        room = self.latest_expiry(created_at) - now
        longest = timedelta(minutes=int(min(room, self.longest_ttl(self.rules_for(service))).total_seconds() // 60))
        return longest if longest > expires_at - now and longest >= self.ttl.min else None

    def _allowed_choices(self, service: str | None) -> tuple[timedelta, ...]:
        longest = self.longest_ttl(self.rules_for(service))
        return tuple(choice for choice in self.notices.extend_choices if self.ttl.min <= choice <= longest)

    def notices_for(self, service: str | None, created_at: datetime) -> Notices:
        """What the execution plane needs to warn before expiry, for an environment created at `created_at`."""
        return Notices(
            warn_before=self.notices.warn_before,
            extend_choices=self._allowed_choices(service),
            latest_expiry=self.latest_expiry(created_at),
            warn_owner_by_dm=self.notices.warn_owner_by_dm,
        )

    def access_for(self, service: str, user_id: str) -> Access | None:
        """The requester's access to an environment of `service`; None when access is off or they are unmapped."""
        if self.access is None or user_id not in self.access.users:
            return None
        role = self.rules_for(service).access_role or self.access.role
        return Access(user=self.access.users[user_id], role=role)

    def check_env_name(self, name: str, argo_namespace: str) -> None:
        reason = reserved_reason(name, (*self.reserved_names, argo_namespace))
        if reason:
            raise UsageError(f"{reason}; pick another environment name.")

    def is_privileged(self, user_id: str) -> bool:
        return user_id in self.admins


def _channels(ids: tuple[str, ...]) -> str:
    return english_list([f"<#{c}>" for c in ids], "or")


def english_list(items: list[str], conjunction: str = "and") -> str:
    """`a`, `a and b`, `a, b and c`: lists read as English."""
    if len(items) <= 2:
        return f" {conjunction} ".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def load_policy(path: Path | None) -> Policy:
    """Read and validate the policy file; any problem becomes one ConfigError line with file and line."""
    if path is None:
        return Policy()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the policy file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the policy file as UTF-8") from None
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {_yaml_problem(exc)}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: line 1: the policy must be a mapping of settings, not {type(raw).__name__}")
    try:
        return Policy.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_problem(exc, node)}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}: not valid YAML ({problem})" if mark is not None else f"not valid YAML ({problem})"


def _first_problem(exc: ValidationError, node: yaml.Node | None) -> str:
    error = exc.errors()[0]
    loc = [part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
    where = ".".join(str(part) for part in loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    line = _line(node, loc)
    return f"{f'line {line}: ' if line else ''}{where}: {message}"


def _line(node: yaml.Node | None, loc: list[Any]) -> int | None:
    """The line of the deepest YAML node the error's field path reaches."""
    found = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        if node is None:
            break
        found = node.start_mark.line + 1
    return found
