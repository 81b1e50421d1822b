"""`python -m whisp_gateway`: run the gateway."""

from whisp_gateway.settings import GatewaySettings
from whisp_shared.service import serve


def main() -> None:
    serve("gateway", "whisp_gateway.app:create_app", GatewaySettings())


if __name__ == "__main__":
    main()
