"""Who may do what: service catalog, TTL bounds, admins, on-call groups, quotas, channels.

The policy is read once at start-up from the YAML file named by ENVBOT_POLICY and is immutable
afterwards. Without a file the documented defaults apply, so existing deployments keep working.
"""

import difflib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Self

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


def _duration(value: object) -> object:
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

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not timedelta(minutes=1) <= self.min <= self.default <= self.max:
            raise ValueError("need 1m <= min <= default <= max")
        return self


class ServicePolicy(_Model):
    description: str | None = Field(default=None, max_length=200)
    default_ttl: Duration | None = None
    max_ttl: Duration | None = None
    channels: tuple[ChannelId, ...] | None = None


class QuotaPolicy(_Model):
    per_user: int = Field(default=10, ge=1, le=1000)
    per_channel: int | None = Field(default=None, ge=1, le=10000)


class Policy(_Model):
    ttl: TtlPolicy = TtlPolicy()
    services: dict[ServiceName, ServicePolicy] | None = None
    admins: tuple[UserId, ...] = ()
    oncall_groups: tuple[GroupId, ...] = ()
    quotas: QuotaPolicy = QuotaPolicy()
    channels: tuple[ChannelId, ...] | None = None
    reserved_names: tuple[EnvName, ...] = ()

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
            allowed = ", ".join(f"<#{c}>" for c in self.channels)
            raise PolicyDenied(f"envbot is not enabled in this channel. Use it in {allowed}.")

    def check_service(self, service: str, channel_id: str | None) -> ServicePolicy:
        if self.services is None:
            return ServicePolicy()
        entry = self.services.get(service)
        if entry is None:
            known = ", ".join(f"`{s}`" for s in sorted(self.services)) or "none"
            close = difflib.get_close_matches(service, list(self.services), n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise UsageError(f"`{service}` is not in the service catalog.{hint} Known services: {known}.")
        if entry.channels is not None and channel_id not in entry.channels:
            allowed = ", ".join(f"<#{c}>" for c in entry.channels)
            raise PolicyDenied(f"`{service}` environments can only be requested in {allowed}.")
        return entry

    def resolve_ttl(self, service: ServicePolicy, requested: timedelta | None) -> timedelta:
        longest = service.max_ttl or self.ttl.max
        ttl = requested or service.default_ttl or self.ttl.default
        if not self.ttl.min <= ttl <= longest:
            raise UsageError(
                f"ttl {format_duration(ttl)} is out of bounds: choose between "
                f"{format_duration(self.ttl.min)} and {format_duration(longest)}.",
                topic="create",
            )
        return ttl

    def check_env_name(self, name: str, argo_namespace: str) -> None:
        reason = reserved_reason(name, (*self.reserved_names, argo_namespace))
        if reason:
            raise UsageError(f"{reason}; pick another environment name.")

    def is_privileged(self, user_id: str) -> bool:
        return user_id in self.admins


def load_policy(path: Path | None) -> Policy:
    """Read and validate the policy file; any problem becomes one ConfigError line."""
    if path is None:
        return Policy()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the policy file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        return Policy.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_problem(exc)}") from None


def _first_problem(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return "; ".join(problems)
