"""Prometheus metrics, served at GET /metrics. Names and meanings are listed in docs/operations.md."""

from prometheus_client import Counter, Gauge, Histogram, Info

from slackbot import __version__

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120)

COMMANDS = Counter(
    "envbot_commands", "Commands and button clicks handled, by action and outcome.", ["action", "outcome"]
)
ACK_SECONDS = Histogram(
    "envbot_ack_seconds", "Time from receiving a Slack request to acknowledging it.", buckets=_LATENCY
)
FOLLOWUP_SECONDS = Histogram(
    "envbot_followup_seconds",
    "Time from receiving a command to its follow-up reply being ready.",
    ["action"],
    buckets=_LATENCY,
)
ARGO_SECONDS = Histogram("envbot_argo_call_seconds", "Duration of argo CLI calls, by verb.", ["verb"], buckets=_LATENCY)
ARGO_FAILURES = Counter("envbot_argo_call_failures", "argo CLI calls that failed or could not run, by verb.", ["verb"])
QUEUE_DEPTH = Gauge("envbot_queue_depth", "Commands accepted but not yet running (waiting for a worker or their turn).")
WORKERS_BUSY = Gauge("envbot_workers_busy", "Workers running a command's slow part.")
DELIVERY_FAILURES = Counter("envbot_followup_delivery_failures", "Follow-up replies Slack did not accept.")
GROUP_LOOKUPS = Counter(
    "envbot_group_lookups",
    "On-call group membership lookups, by result (hit, miss, failure, cached_failure).",
    ["result"],
)
DUPLICATES = Counter("envbot_duplicates_ignored", "Replayed requests and double clicks that were not processed again.")
VIEW_AGE = Gauge("envbot_view_age_seconds", "Seconds since the view of environments was last read from Argo.")
VIEW_REFRESH_FAILURES = Counter("envbot_view_refresh_failures", "Reads of the view of environments that failed.")
ROOT_UPDATES = Counter(
    "envbot_root_updates", "Environments' channel messages the bot updated (notices off), by result.", ["result"]
)
ROOTS_QUEUED = Gauge("envbot_root_updates_queued", "Environments' channel messages waiting for an update.")
BUILD = Info("envbot_build", "envbot version.")
BUILD.info({"version": __version__})


def argo_call(verb: str, seconds: float, ok: bool) -> None:
    ARGO_SECONDS.labels(verb).observe(seconds)
    if not ok:
        ARGO_FAILURES.labels(verb).inc()


def command(action: str | None, outcome: str) -> None:
    COMMANDS.labels(action or "unknown", outcome).inc()
