"""`python -m whisp_agent`: run the agent service (after validating its registry)."""

import sys

import uvicorn

from whisp_agent.app import load
from whisp_agent.registry import RegistryError
from whisp_agent.settings import AgentSettings
from whisp_shared.config import LoggingSettings
from whisp_shared.logs import configure_logging


def main() -> None:
    settings = AgentSettings()
    try:
        load(settings)
    except RegistryError as exc:
        # Refuse to start, and say why: every problem, with file and field.
        print(f"agent-service: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(2)
    # As whisp_shared.service.serve(), which wants a ServiceSettings: AgentSettings stays
    # free of the web stack so that `whisp agents validate` can import it.
    configure_logging("agent-service", LoggingSettings())
    uvicorn.run(
        "whisp_agent.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
