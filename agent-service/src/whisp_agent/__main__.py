"""`python -m whisp_agent`: run the agent service."""

from whisp_agent.settings import AgentSettings
from whisp_shared.service import serve


def main() -> None:
    serve("agent-service", "whisp_agent.app:create_app", AgentSettings())


if __name__ == "__main__":
    main()
