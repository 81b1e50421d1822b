"""Dependencies the routes declare; each reads what `create_app` put on `app.state`, so a
test can build an app with other parts and the routes stay unchanged.

Who calls is the shared `CallerDep` (token check, `X-Whisp-User`, the local user). This
service widens one thing: reading every user's usage (`reads_all_users`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from whisp_agent.runtime import AgentRuntime
from whisp_agent.settings import AgentSettings
from whisp_agent.store import Store
from whisp_shared.caller import Caller
from whisp_shared.http_caller import CallerDep
from whisp_shared.service import app_state

RuntimeDep = Annotated[AgentRuntime, Depends(app_state("runtime", AgentRuntime))]
SettingsDep = Annotated[AgentSettings, Depends(app_state("settings", AgentSettings))]
StoreDep = Annotated[Store, Depends(app_state("store", Store))]


def reads_all_users(caller: Caller, settings: AgentSettings) -> bool:
    """Whether `caller` may read across users. Any caller that got past the service token is a
    service (the gateway, the CLI) even when it names a user, and on a desk in local mode
    every caller is the machine's own person; a trusted caller always may."""
    return caller.trusted or settings.service_token is not None or settings.mode == "local"


__all__ = ["CallerDep", "RuntimeDep", "SettingsDep", "StoreDep", "reads_all_users"]
