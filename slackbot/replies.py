"""Every message envbot sends, in Slack mrkdwn plus abstract buttons. Transports decide how to render them."""

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from slackbot.commands import USAGE, Target
from slackbot.durations import format_duration, format_remaining
from slackbot.errors import EnvbotError, UsageError
from slackbot.history import Environment, workflow_state
from slackbot.orchestrator import Submission, WorkflowDetail, WorkflowRecord
from slackbot.spec import EnvironmentSpec

Visibility = Literal["ephemeral", "in_channel"]
LIST_LIMIT = 20
STATUS_WORKFLOWS = 20  # the create plus the newest 19


class Button(BaseModel):
    """A one-click version of a command. Clicks go through the same path as the typed command."""

    model_config = ConfigDict(frozen=True)
    action: Literal["extend", "destroy"]
    env: str
    incarnation: str  # the create workflow of the environment the message is about (see slack/blocks.py)
    ttl: timedelta | None = None
    label: str

    @property
    def command(self) -> str:
        ttl = f" ttl={format_duration(self.ttl)}" if self.ttl else ""
        return f"{self.action} {self.env}{ttl}"

    @property
    def confirm(self) -> str | None:
        """Destructive buttons ask first, in Slack's own confirmation dialog."""
        if self.action != "destroy":
            return None
        return f"This deletes the namespace `{self.env}` and everything in it. It can't be undone."


class Row(BaseModel):
    """One line of a list, with the actions on it (rendered as an overflow menu)."""

    model_config = ConfigDict(frozen=True)
    text: str
    buttons: tuple[Button, ...] = ()


class Reply(BaseModel):
    model_config = ConfigDict(frozen=True)
    text: str
    # A list, row by row (the text above holds the same lines, for notifications and the console).
    title: str | None = None
    rows: tuple[Row, ...] = ()
    more: str | None = None
    visibility: Visibility = "ephemeral"
    buttons: tuple[Button, ...] = ()
    submitted: bool = False  # a workflow was submitted (a repeat of this click would submit again)
    problem: bool = False  # refused, invalid or failed: the console exits non-zero
    replaces_ack: bool = False  # shown in place of the "Checking…" acknowledgement (response_url replace_original)


class Links:
    """Workflow names, linked into the Argo UI when ARGO_UI_URL is set."""

    def __init__(self, argo_ui_url: str | None, namespace: str) -> None:
        self._base = argo_ui_url.rstrip("/") if argo_ui_url else None
        self._namespace = namespace

    def workflow(self, name: str, namespace: str | None = None) -> str:
        """`namespace`: where a record lives, when not ARGO_NAMESPACE (ARGO_PREVIOUS_NAMESPACE, ADR 0014)."""
        if self._base is None:
            return f"`{name}`"
        return f"<{self._base}/workflows/{namespace or self._namespace}/{name}|{name}>"


def slack_date(moment: datetime) -> str:
    """A date each reader sees once, in their own time zone; the UTC instant is the fallback where Slack
    can't localise it (notifications, the console)."""
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def buttons_for(env: str, incarnation: str, extend_choices: Iterable[timedelta]) -> tuple[Button, ...]:
    extend = tuple(
        Button(
            action="extend", env=env, incarnation=incarnation, ttl=choice, label=f"Extend +{format_duration(choice)}"
        )
        for choice in extend_choices
    )
    return (*extend, Button(action="destroy", env=env, incarnation=incarnation, label="Destroy"))


# --- help and mistakes --------------------------------------------------------------------------


def help_text(bounds: str, services: Sequence[str] | None) -> Reply:
    lines = [
        "*envbot* gives you short-lived Kubernetes environments (one namespace each).",
        f"• `{USAGE['create']}`: ttl like `30m`, `4h`, `2h30m`, `1d12h` ({bounds})",
        f"• `{USAGE['list']}`: live environments (yours, everyone's, a person's or a channel's)",
        f"• `{USAGE['status']}`: owner, expiry and every workflow of one environment",
        f"• `{USAGE['extend']}`: keep it longer (owner, admins and on-call)",
        f"• `{USAGE['deploy']}`: deploy another version into it (owner, admins and on-call)",
        f"• `{USAGE['destroy']}`: delete it now (owner, admins and on-call)",
        f"• `{USAGE['help']}`: this text",
    ]
    if services is not None:
        lines.append("*Services*" if services else "*Services*: none configured; ask the platform team.")
        lines.extend(services)
    lines.append(
        "Example: `/env create checkout version=1.4.2 ttl=4h`. Without `version=`, `ref=` or `pr=` the "
        "service's recipe picks the version; `/env status` shows the one deployed and its URL."
    )
    return Reply(text="\n".join(lines))


def usage_error(error: UsageError) -> Reply:
    """One line: the problem, the usage of the command it is about (if any), and where to read more."""
    usage = USAGE.get(error.topic or "")
    how = f" Usage: `{usage}`." if usage else ""
    return Reply(text=f":warning: {error.user_message}{how} More in `/env help`.", problem=True)


def refused(error: EnvbotError) -> Reply:
    return Reply(text=f":no_entry: {error.user_message}", problem=True)


def failed(action: str, env_name: str | None, error: EnvbotError) -> Reply:
    subject = f"`{env_name}`" if env_name else "environments"
    return Reply(text=f":x: Could not {action} {subject}: {error.user_message}", problem=True)


# What a request that never reached the cluster left unchanged, per action.
_UNCHANGED = {
    "create": "Nothing was created.",
    "extend": "Its expiry was not changed.",
    "destroy": "Nothing was deleted.",
}
_AFTER = {"create": "have been created", "extend": "have been extended", "destroy": "have been deleted"}


def unavailable(action: str, env_name: str | None, reference: str, maybe_submitted: bool) -> Reply:
    """The execution plane could not be asked (or answered unclearly): the operator's detail is in the
    log under `reference`; the user learns what happened to their request and what to do next."""
    subject = f"`{env_name}`" if env_name else "environments"
    ask = f"give the platform team the reference `{reference}`"
    if maybe_submitted and env_name:
        return Reply(
            text=f":warning: I lost track of your request to {action} {subject} part-way, so it may "
            f"{_AFTER.get(action, 'have happened')} anyway. Check with `/env status {env_name}` in a minute "
            f"before trying again; if it looks wrong, {ask}.",
            problem=True,
        )
    unchanged = _UNCHANGED.get(action, "")
    return Reply(
        text=f":x: I couldn't {action if action in _UNCHANGED else 'look up'} {subject}: envbot couldn't get an "
        f"answer from the cluster. {unchanged}".rstrip()
        + f" Try again in a few minutes; if it keeps happening, {ask}.",
        problem=True,
    )


def internal_error(reference: str) -> Reply:
    return Reply(
        text=f":x: Something went wrong inside envbot (reference `{reference}`). Check `/env list` before "
        "trying again, and give the reference to the platform team if it repeats.",
        problem=True,
    )


def create_requested(env_name: str, service: str, ttl: timedelta, user: str, expires_at: datetime) -> Reply:
    """The environment's channel message while its create is being submitted (docs/adr/0009)."""
    return Reply(
        text=f":hourglass_flowing_sand: <@{user}> requested environment `{env_name}` (service `{service}`, ttl "
        f"{format_duration(ttl)}), expiring {slack_date(expires_at)}. Submitting…",
        visibility="in_channel",
    )


def create_not_submitted(env_name: str, maybe_submitted: bool) -> Reply:
    """What the environment's channel message says when its create could not be submitted."""
    if maybe_submitted:
        return Reply(
            text=f":warning: `{env_name}` may or may not have been created (envbot lost track of the request). "
            f"Check with `/env status {env_name}`.",
            visibility="in_channel",
        )
    return Reply(text=f":x: `{env_name}` was not created: the request could not be submitted.", visibility="in_channel")


def posted_in_channel(env_name: str, announcement: Reply) -> Reply:
    """The requester's pointer, in place of "Checking…": the channel message is the one that keeps state."""
    return Reply(
        text=f":white_check_mark: Requested `{env_name}`. Its message in this channel shows how it is doing; "
        "updates go in that message's thread.",
        submitted=announcement.submitted,
        replaces_ack=True,
    )


def posted_in_thread(env_name: str, announcement: Reply) -> Reply:
    return Reply(
        text=f":white_check_mark: Done: posted in the thread of `{env_name}`'s message in its channel.",
        submitted=announcement.submitted,
        replaces_ack=True,
    )


def cannot_post_here(code: str) -> str:
    """Why the bot can't keep one message per environment in this conversation, and how to fix it."""
    return (
        f"_I can't post in this conversation (Slack said `{code}`), so I can't keep one message per environment "
        "here and notices may not arrive. Invite me with `/invite @envbot` (or ask an admin to grant the app "
        "`chat:write.public` for public channels)._"
    )


RESTARTING = Reply(text=":warning: envbot is restarting; nothing was submitted. Try again in a minute.", problem=True)
INTERRUPTED = Reply(
    text=":warning: envbot was stopped while working on this. It may or may not have reached the cluster; "
    "check `/env status` in a minute before retrying.",
    problem=True,
)
DUPLICATE = Reply(text=":information_source: Already on it: that request arrived twice, so it runs once.")


def checking(action: str, target: str) -> Reply:
    """The immediate acknowledgement: promises nothing that a later check could take back."""
    return Reply(text=f":hourglass_flowing_sand: Checking `{action} {target}`…")


def looking_up(what: str) -> Reply:
    return Reply(text=f":mag: Looking up {what}…")


# --- outcomes -----------------------------------------------------------------------------------


def created(
    spec: EnvironmentSpec, ttl: timedelta, submission: Submission, links: Links, buttons: tuple[Button, ...]
) -> Reply:
    who = f"<@{spec.requested_by}> requested" if spec.requested_by else "Requested"
    return _announce(
        submission,
        f":rocket: {who} environment `{spec.env_name}` (service `{spec.service}` at {_target(spec.target)}, "
        f"ttl {format_duration(ttl)}).\n"
        + (f"You get `{spec.access.role}` access to it as `{spec.access.user}`.\n" if spec.access else "")
        + f"Expires {slack_date(spec.expires_at)}.\n"
        f"Workflow: {links.workflow(submission.workflow_name)}",
        buttons,
    )


def extended(
    env: Environment,
    user: str,
    expires_at: datetime,
    ttl: timedelta,
    submission: Submission,
    links: Links,
    buttons: tuple[Button, ...],
) -> Reply:
    owner = f" (owner <@{env.owner}>)" if env.owner and env.owner != user else ""
    return _announce(
        submission,
        f":hourglass: <@{user}> extended `{env.name}`{owner} by {format_duration(ttl)} from now.\n"
        f"Expires {slack_date(expires_at)}.\n"
        f"Workflow: {links.workflow(submission.workflow_name)}",
        buttons,
    )


def deploy_submitted(
    env: Environment, user: str, target: Target, submission: Submission, links: Links, buttons: tuple[Button, ...]
) -> Reply:
    owner = f" (owner <@{env.owner}>)" if env.owner and env.owner != user else ""
    running = env.deployed.version if env.deployed and env.deployed.version else None
    now_running = f" It runs `{running}` until the new version is ready." if running else ""
    return _announce(
        submission,
        f":rocket: <@{user}> is deploying `{env.service}` at {_target(target)} into `{env.name}`{owner}.{now_running}\n"
        f"Workflow: {links.workflow(submission.workflow_name)}",
        buttons,
    )


def _target(target: Target) -> str:
    return target.text if target.text == "the recipe's default" else f"`{target.text}`"


def destroy_submitted(
    env_name: str, user: str | None, env: Environment | None, submission: Submission, links: Links
) -> Reply:
    who = f"<@{user}> requested" if user else "Requested"
    owner = f" (owner <@{env.owner}>)" if env and env.owner and env.owner != user else ""
    return _announce(
        submission,
        f":wastebasket: {who} destroy of environment `{env_name}`{owner}.\n"
        f"Workflow: {links.workflow(submission.workflow_name)}",
        (),
    )


def _announce(submission: Submission, text: str, buttons: tuple[Button, ...]) -> Reply:
    dry = "\n_Dry run: nothing was submitted._" if submission.dry_run else ""
    return Reply(text=text + dry, visibility="in_channel", buttons=buttons, submitted=True)


def listing(
    title: str,
    envs: list[Environment],
    now: datetime,
    actions: Callable[[Environment], tuple[Button, ...]] = lambda _env: (),
) -> Reply:
    """One line per environment (failed creates first, then the soonest to expire), each with its actions;
    at most LIST_LIMIT lines and how many more."""
    if not envs:
        return Reply(text=f"{title}: none live. Create one with `/env create <service>`.")
    envs = sorted(envs, key=lambda e: (not e.create.failed, e.expires_at or datetime.max.replace(tzinfo=UTC), e.name))
    head = f"*{title}* ({len(envs)}, soonest expiry first)"
    rows = tuple(Row(text=_list_line(env, now), buttons=actions(env)) for env in envs[:LIST_LIMIT])
    more = None
    if len(envs) > LIST_LIMIT:
        more = f"…and {len(envs) - LIST_LIMIT} more. Narrow it with `/env list @person` or `/env list #channel`."
    lines = [head, *(row.text for row in rows), *([more] if more else [])]
    return Reply(text="\n".join(lines), title=head, rows=rows, more=more)


_WORKFLOW_WORDS = {
    "create": {"submitted": "submitted", "running": "creating", "ready": "ready", "failed": "create failed"},
    "extend": {"submitted": "extend submitted", "running": "extending", "ready": "extended", "failed": "extend failed"},
    "deploy": {"submitted": "deploy submitted", "running": "deploying", "ready": "deployed", "failed": "deploy failed"},
    "destroy": {
        "submitted": "destroy submitted", "running": "destroying", "ready": "destroyed", "failed": "destroy failed",
    },
}  # fmt: skip


def workflow_words(record: WorkflowRecord) -> str:
    """What a workflow did, in words: `ready` only for a finished create, `extended`/`destroyed` for the others."""
    return _WORKFLOW_WORDS[record.action][workflow_state(record)]


def _list_line(env: Environment, now: datetime) -> str:
    where = f" · <#{env.channel}>" if env.channel else ""
    owner = f" · <@{env.owner}>" if env.owner else ""
    if env.state(now) == "failed":
        return f"• :x: `{env.name}` · {env.service or '?'}{owner}{where} · create failed: see `/env status {env.name}`"
    return (
        f"• `{env.name}` · {env.service or '?'}{_running(env)}{owner}{where} · expires {_expiry(env, now)} · "
        f"{workflow_words(env.last_workflow)}"
    )


def running(env: Environment) -> str:
    """What is deployed and where (for other surfaces, e.g. the Home tab)."""
    return _running(env)


def _running(env: Environment) -> str:
    """` 1.4.2 · https://…`: what is deployed and where, once the execution plane reported it."""
    deployed = env.deployed
    if deployed is None:
        return ""
    version = f" `{deployed.version}`" if deployed.version else ""
    url = f" · <{deployed.url}>" if deployed.url else ""
    return version + url


def _expiry(env: Environment, now: datetime) -> str:
    if env.expires_at is None:
        return "never (no expiry recorded)"
    return f"{slack_date(env.expires_at)}, {format_remaining(env.expires_at - now)} left"


def status(env: Environment, details: dict[str, WorkflowDetail], now: datetime, links: Links) -> Reply:
    state = env.state(now)
    lines = [
        f"*`{env.name}`*: {_STATE_WORDS[state]}",
        f"Owner <@{env.owner}> · service `{env.service or '?'}`" + (f" · <#{env.channel}>" if env.channel else ""),
        *_deployment_lines(env),
        f"Created {slack_date(env.created_at)}",
        f"Expires {_expiry(env, now)}"
        if state == "live"
        else f"Expiry was {slack_date(env.expires_at)}"
        if env.expires_at
        else "No expiry recorded",
        "*Workflows*",
    ]
    # The create and the newest ones: a message holds at most 50 blocks, and nobody reads 350 lines.
    shown = env.workflows if len(env.workflows) <= STATUS_WORKFLOWS else (
        env.workflows[:1] + env.workflows[-(STATUS_WORKFLOWS - 1) :]
    )  # fmt: skip
    lines += [_workflow_line(record, details.get(record.name), links) for record in shown[:1]]
    if len(shown) < len(env.workflows):
        lines.append(f"• …{len(env.workflows) - len(shown)} earlier workflows not shown")
    lines += [_workflow_line(record, details.get(record.name), links) for record in shown[1:]]
    return Reply(text="\n".join(lines))


def _deployment_lines(env: Environment) -> list[str]:
    deployed, trying = env.deployed, env.deploying
    lines = []
    if deployed is not None and (deployed.version or deployed.url):
        lines.append(
            "Runs " + (f"`{deployed.version}`" if deployed.version else "its recipe's default")
            + (f" at <{deployed.url}>" if deployed.url else "")
        )  # fmt: skip
    if trying is not None and trying.requested_version:
        lines.append(f"Asked for {trying.requested_version}: {workflow_words(trying)}")
    return lines


_STATE_WORDS = {
    "live": "live",
    "failed": "its create failed (deploy another version with `/env deploy`, or destroy it)",
    "destroying": "being destroyed",
    "destroyed": "destroyed",
    "expired": "expired (the reaper deletes it)",
}


def _workflow_line(record: WorkflowRecord, detail: WorkflowDetail | None, links: Links) -> str:
    by = f" by <@{record.requested_by}>" if record.requested_by else ""
    until = f", to {slack_date(record.expires_at)}" if record.action == "extend" and record.expires_at else ""
    if record.action in ("create", "deploy") and (record.version or record.requested_version):
        until = f" of `{record.version}`" if record.version else f" of {record.requested_version}"
    line = f"• {record.action}{until}{by}: {links.workflow(record.name, record.namespace)} · {workflow_words(record)}"
    if detail is not None and detail.failed_step is not None:
        line += f"\n    step `{detail.failed_step.name}` failed: {detail.failed_step.message[:300]}"
    elif record.failed and record.message:
        line += f"\n    {record.message[:300]}"
    return line
