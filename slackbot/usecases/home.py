"""The Home tab's data: the user's own environments (live, or a create that failed recently), each with
the buttons a message about it would carry, through the same visibility filter as `list`."""

from datetime import datetime

from slackbot.history import Environment
from slackbot.orchestrator import Scope
from slackbot.replies import Button
from slackbot.usecases.common import Services
from slackbot.usecases.listing import listed
from slackbot.usecases.visibility import Viewer


def rows(services: Services, user_id: str, now: datetime) -> list[tuple[Environment, tuple[Button, ...]]]:
    found = services.history.environments(Scope(owner=user_id), view=True)
    mine = Viewer(services, user_id).visible(env for env in found.values() if listed(env, now))
    mine.sort(key=lambda env: (not env.create.failed, env.expires_at or now, env.name))
    return [(env, _buttons(services, env, now)) for env in mine]


def _buttons(services: Services, env: Environment, now: datetime) -> tuple[Button, ...]:
    if not env.is_live(now):
        return ()
    return services.buttons(env.name, env.create.name, env.service, env.created_at, now, env.expires_at)
