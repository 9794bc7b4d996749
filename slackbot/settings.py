"""Configuration from the environment and an optional `.env`, validated once at start-up."""

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, HttpUrl, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from slackbot.errors import ConfigError
from slackbot.names import check_label


def _api_url(value: HttpUrl) -> HttpUrl:
    if not str(value).endswith("/"):
        raise ValueError("must end with '/' (for example https://slack.com/api/)")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: Annotated[HttpUrl, AfterValidator(_api_url)] = HttpUrl("https://slack.com/api/")
    argo_bin: str = Field(default="argo", min_length=1)
    argo_namespace: Annotated[str, AfterValidator(lambda v: check_label("ARGO_NAMESPACE", v))] = "argo"
    argo_timeout: float = Field(default=30.0, gt=0, le=600)
    argo_concurrency: int = Field(default=8, ge=1, le=64)
    port: int = Field(default=3000, ge=1, le=65535)
    host: str = "0.0.0.0"  # noqa: S104 - the pod's listener; probes and Slack reach it through a Service
    envbot_policy: Path | None = None
    envbot_audit_file: Path | None = None
    group_cache_seconds: float = Field(default=300.0, ge=0, le=86400)
    log_level: Annotated[str, BeforeValidator(lambda v: str(v).upper())] = Field(
        default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$"
    )

    def is_set(self, name: str) -> bool:
        value = getattr(self, name)
        return value is not None and bool(value.get_secret_value().strip())

    @property
    def default_mode(self) -> str:
        return "socket" if self.is_set("slack_app_token") else "http"

    def secrets_for(self, mode: str) -> tuple[str, str]:
        return ("slack_bot_token", "slack_app_token" if mode == "socket" else "slack_signing_secret")

    def require(self, mode: str) -> None:
        """Stop with one line naming the first missing secret the mode needs."""
        for name in self.secrets_for(mode):
            if not self.is_set(name):
                raise ConfigError(f"{name.upper()} is not set; see .env.example")


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{name} is invalid: {message}") from None
