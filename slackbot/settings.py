"""Configuration from the environment and an optional `.env`, validated once at start-up."""

import ipaddress
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, HttpUrl, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from slackbot.argo_cli.passthrough import Passthrough
from slackbot.errors import ConfigError
from slackbot.names import check_label

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9.]{0,251}[A-Za-z0-9])?")


def _api_url(value: HttpUrl) -> HttpUrl:
    if not str(value).endswith("/"):
        raise ValueError("must end with '/' (for example https://slack.com/api/)")
    return value


def _finite(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
        raise ValueError(f"'{value}' is not a number of seconds; use a plain number such as 30")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a number of seconds; use a plain number such as 30")
    return value


def _passthrough(value: str) -> str:
    Passthrough.parse(value)  # refuses what may not pass, with the entry that may not
    return value


def _log_level(value: object) -> str:
    level = str(value).strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"'{value}' is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return level


def _host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            raise ValueError(f"'{value}' is not an IP address or host name to listen on (e.g. 0.0.0.0)") from None
    return value


def _previous_namespace(value: str | None) -> str | None:
    return None if value is None or not value.strip() else check_label("ARGO_PREVIOUS_NAMESPACE", value.strip())


def _optional_path(value: object) -> object:
    # `ENVBOT_AUDIT_FILE=` (empty) means unset, not the current directory.
    return None if isinstance(value, str) and not value.strip() else value


Seconds = Annotated[float, BeforeValidator(_finite)]
OptionalPath = Annotated[Path | None, BeforeValidator(_optional_path)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: Annotated[HttpUrl, AfterValidator(_api_url)] = HttpUrl("https://slack.com/api/")
    # Follow-ups go only to response_urls under this prefix (GovSlack and tests set their own).
    slack_response_url_prefix: HttpUrl = HttpUrl("https://hooks.slack.com/")
    slack_timeout: Seconds = Field(default=5.0, gt=0, le=60)
    # One message per environment (docs/adr/0009): the create announcement is a channel message the
    # notices thread under and update. Off: announcements go through response_url as separate messages.
    slack_threads: bool = True
    argo_bin: str = Field(default="argo", min_length=1)
    argo_namespace: Annotated[str, AfterValidator(lambda v: check_label("ARGO_NAMESPACE", v))] = "envbot-workflows"
    # Where envbot's workflows lived before argo/upgrade/to-own-namespace.sh (e.g. `argo`): history is
    # read there too, never written, while environments created before the upgrade live (ADR 0014).
    argo_previous_namespace: Annotated[str | None, AfterValidator(_previous_namespace)] = None
    argo_timeout: Seconds = Field(default=30.0, gt=0, le=600)
    argo_concurrency: int = Field(default=8, ge=1, le=64)
    # MiB read from one `argo list` at most; lists are parsed as they stream, so this bounds time, not memory.
    argo_output_limit: int = Field(default=512, ge=1, le=4096)
    argo_ui_url: HttpUrl | None = None
    # More variables for argo's kubeconfig login plugins: names and PREFIX_* (docs/install.md). Never SLACK_*.
    argo_env_passthrough: Annotated[str, AfterValidator(_passthrough)] = ""
    # Seconds between reads of every envbot workflow for the create view (docs/adr/0010); 0: read per create.
    env_view_refresh: Seconds = Field(default=30.0, ge=0, le=3600)
    port: int = Field(default=3000, ge=1, le=65535)
    # Probes and metrics on a listener of their own, so a flood of Slack-facing connections can't starve them.
    ops_port: int | None = Field(default=None, ge=0, le=65535)
    host: Annotated[str, AfterValidator(_host)] = "0.0.0.0"  # noqa: S104 - the pod's listener, behind a Service
    http_threads: int = Field(default=16, ge=2, le=256)
    # Connections cost a file descriptor each, not a thread: the limit is high, the per-client limit low.
    http_connection_limit: int = Field(default=1000, ge=10, le=10000)
    http_connections_per_client: int = Field(default=64, ge=1, le=10000)
    http_read_deadline: Seconds = Field(default=5.0, gt=0, le=120)  # whole request, headers and body
    http_idle_timeout: int = Field(default=10, ge=1, le=600)
    shutdown_grace: Seconds = Field(default=20.0, ge=0, le=600)
    # HTTP mode: after SIGTERM, /readyz fails and requests are still served this long (Service endpoints update).
    shutdown_drain: Seconds = Field(default=3.0, ge=0, le=120)
    envbot_policy: OptionalPath = None
    envbot_audit_file: OptionalPath = None
    group_cache_seconds: Seconds = Field(default=300.0, ge=0, le=86400)
    log_level: Annotated[str, BeforeValidator(_log_level)] = "INFO"

    @model_validator(mode="after")
    def _previous_is_another_namespace(self) -> "Settings":
        if self.argo_previous_namespace == self.argo_namespace:
            raise ValueError(
                "ARGO_PREVIOUS_NAMESPACE must name the namespace envbot used before the upgrade, not ARGO_NAMESPACE"
            )
        return self

    def is_set(self, name: str) -> bool:
        value = getattr(self, name)
        return value is not None and bool(value.get_secret_value().strip())

    @property
    def default_mode(self) -> Literal["http", "socket"]:
        return "socket" if self.is_set("slack_app_token") else "http"

    def secrets_for(self, mode: str) -> tuple[str, str]:
        return ("slack_bot_token", "slack_app_token" if mode == "socket" else "slack_signing_secret")

    def require(self, mode: str) -> None:
        """Stop with one line naming the first missing secret the mode needs."""
        for name in self.secrets_for(mode):
            if not self.is_set(name):
                raise ConfigError(f"{name.upper()} is not set; see .env.example")

    def secret(self, name: str) -> str:
        value: SecretStr | None = getattr(self, name)
        return value.get_secret_value().strip() if value is not None else ""


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        raise ConfigError(f"{name} is invalid: {_message(error)}") from None


def _message(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in ("float_parsing", "int_parsing"):
        return f"'{error['input']}' is not a number"
    return message
