"""The bot's record of an environment is its workflows, so they must outlive the environment.

The policy's `ttl.lifetime` (the longest an environment can live, extensions included) must fit
inside the installed templates' workflow retention (`ttlStrategy`). Checked at start-up, by
`envbot check`, and before the first create or extend; a failed check is never cached.
"""

import threading
from datetime import timedelta

from slackbot.durations import format_duration
from slackbot.errors import OrchestratorError
from slackbot.orchestrator import TEMPLATES, EnvironmentOrchestrator
from slackbot.policy import Policy

# The reaper runs every few minutes: a namespace can outlive its expiry by that much.
MARGIN = timedelta(hours=1)


class RecordRetention:
    def __init__(self, orchestrator: EnvironmentOrchestrator, policy: Policy) -> None:
        self._orchestrator = orchestrator
        self._policy = policy
        self._verified = orchestrator.dry_run  # a dry run keeps nothing, so there is nothing to outlive
        self._lock = threading.Lock()
        self._shortest: timedelta | None = None

    def problem(self) -> str | None:
        """Why records could vanish before their environments do; None if they can't (which is then
        remembered). Raises OrchestratorError when the templates can't be read."""
        lifetime = self._policy.ttl.lifetime
        for name in TEMPLATES:
            seconds = self._orchestrator.template(name).retention_seconds
            if seconds is None:
                continue  # no ttlStrategy: Argo keeps the workflow until someone deletes it
            kept = timedelta(seconds=seconds)
            self._shortest = min(kept, self._shortest or kept)
            if kept < lifetime + MARGIN:
                return (
                    f"WorkflowTemplate {name} keeps its workflows {format_duration(timedelta(seconds=seconds))}, "
                    f"but the policy lets an environment live {format_duration(lifetime)} (ttl.lifetime) plus "
                    f"{format_duration(MARGIN)} for the reaper; lower ttl.lifetime or raise the templates' ttlStrategy"
                )
        self._verified = True
        return None

    @property
    def verified(self) -> bool:
        return self._verified

    def summary(self) -> str:
        kept = f"workflows kept {format_duration(self._shortest)}" if self._shortest else "workflows kept until deleted"
        lifetime = format_duration(self._policy.ttl.lifetime)
        return f"{kept}, longer than ttl.lifetime {lifetime} plus {format_duration(MARGIN)} for the reaper"

    def ensure(self) -> None:
        """Raise (and submit nothing) unless the retention has been confirmed once."""
        if self._verified:
            return
        with self._lock:
            if self._verified:
                return
            try:
                problem = self.problem()
            except OrchestratorError as error:
                raise OrchestratorError(
                    f"I couldn't confirm that envbot's records outlive environments: {error.user_message}"
                ) from None
            if problem is not None:
                raise OrchestratorError(f"envbot is misconfigured, so nothing was submitted: {problem}.")
