"""Domain errors. Each carries the sentence shown to the person who typed the command."""


class EnvbotError(Exception):
    """Base class: `user_message` is safe to show in Slack (no secrets, no stack traces)."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class UsageError(EnvbotError):
    """The command text is malformed; the reply repeats the usage of `topic` (or all of it)."""

    def __init__(self, user_message: str, topic: str | None = None) -> None:
        super().__init__(user_message)
        self.topic = topic


class PolicyDenied(EnvbotError):
    """Well-formed, but the policy does not allow it for this person, channel or service."""


class OrchestratorError(EnvbotError):
    """The execution plane could not take the request (argo missing, refused, timed out...).

    Its message is for operators: it goes to the log, and users get their own words with a reference
    to it. `maybe_submitted` is set when a submit may have reached the cluster (a timeout, a restart).
    """

    def __init__(self, user_message: str, maybe_submitted: bool = False) -> None:
        super().__init__(user_message)
        self.maybe_submitted = maybe_submitted


class ConfigError(EnvbotError):
    """A setting or the policy file is missing or malformed; start-up stops with this line."""
