"""Every message envbot sends, in Slack mrkdwn. Transports decide how to deliver them."""

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from slackbot.clock import rfc3339
from slackbot.commands import USAGE
from slackbot.durations import format_duration
from slackbot.environments import Environment
from slackbot.errors import EnvbotError, UsageError
from slackbot.orchestrator import Submission
from slackbot.spec import DestroyRequest, EnvironmentSpec

Visibility = Literal["ephemeral", "in_channel"]


class Reply(BaseModel):
    model_config = ConfigDict(frozen=True)
    text: str
    visibility: Visibility = "ephemeral"


def slack_date(moment: datetime) -> str:
    """A date each reader sees in their own time zone, with the UTC instant as fallback."""
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}> ({rfc3339(moment)})"


def help_text(ttl_default: timedelta, ttl_min: timedelta, ttl_max: timedelta, services: list[str] | None) -> Reply:
    bounds = (
        f"between {format_duration(ttl_min)} and {format_duration(ttl_max)}, default {format_duration(ttl_default)}"
    )
    lines = [
        "*envbot* gives you short-lived Kubernetes environments (one namespace each).",
        f"• `{USAGE['create']}`: ttl like `30m`, `4h`, `2h30m`, `1d12h` ({bounds})",
        f"• `{USAGE['destroy']}`: for its owner, admins and on-call",
        f"• `{USAGE['help']}`: this text",
    ]
    if services is not None:
        lines.append("Services: " + (", ".join(f"`{name}`" for name in services) or "none configured"))
    lines.append("Example: `/env create checkout ttl=4h`")
    return Reply(text="\n".join(lines))


def usage_error(error: UsageError) -> Reply:
    usage = USAGE.get(error.topic or "")
    how = f"Usage: `{usage}`" if usage else "Usage:\n" + "\n".join(f"• `{u}`" for u in USAGE.values())
    return Reply(text=f":warning: {error.user_message}\n{how}")


def refused(error: EnvbotError) -> Reply:
    return Reply(text=f":no_entry: {error.user_message}")


def failed(action: str, env_name: str, error: EnvbotError) -> Reply:
    return Reply(text=f":x: Could not {action} `{env_name}`: {error.user_message}")


def internal_error(reference: str) -> Reply:
    return Reply(
        text=f":x: Something went wrong inside envbot (reference `{reference}`). Nothing more was "
        "submitted; try again, and give the reference to the platform team if it repeats."
    )


def submitting_create(spec: EnvironmentSpec, ttl: timedelta) -> Reply:
    return Reply(
        text=f":hourglass_flowing_sand: Submitting `{spec.env_name}` ({spec.service}, ttl {format_duration(ttl)})…"
    )


def submitting_destroy(env_name: str) -> Reply:
    return Reply(text=f":hourglass_flowing_sand: Submitting destroy of `{env_name}`…")


def created(spec: EnvironmentSpec, submission: Submission) -> Reply:
    who = f"<@{spec.requested_by}> requested" if spec.requested_by else "Requested"
    return Reply(
        visibility=_visibility(submission),
        text=(
            f":rocket: {who} environment `{spec.env_name}` (service `{spec.service}`).\n"
            f"Expires {slack_date(spec.expires_at)}.\n"
            f"Workflow: `{submission.workflow_name}`{_dry(submission)}"
        ),
    )


def destroy_submitted(request: DestroyRequest, submission: Submission, env: Environment | None) -> Reply:
    who = f"<@{request.requested_by}> requested" if request.requested_by else "Requested"
    owner = f" (owner <@{env.owner}>)" if env and env.owner and env.owner != request.requested_by else ""
    return Reply(
        visibility=_visibility(submission),
        text=(
            f":wastebasket: {who} destroy of environment `{request.env_name}`{owner}.\n"
            f"Workflow: `{submission.workflow_name}`{_dry(submission)}"
        ),
    )


def _visibility(submission: Submission) -> Visibility:
    return "ephemeral" if submission.dry_run else "in_channel"


def _dry(submission: Submission) -> str:
    return "\n_Dry run: nothing was submitted._" if submission.dry_run else ""
