"""`python -m whisp_agent`: run the agent service (after validating its registry)."""

import sys

from whisp_agent.app import load
from whisp_agent.registry import RegistryError
from whisp_agent.settings import AgentSettings
from whisp_shared.service import serve


def main() -> None:
    settings = AgentSettings()
    try:
        load(settings)
    except RegistryError as exc:
        # Refuse to start, and say why: every problem, with file and field.
        print(f"agent-service: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(2)
    serve("agent-service", "whisp_agent.app:create_app", settings)


if __name__ == "__main__":
    main()
