"""Home Assistant's Wyoming speech-to-text protocol, served by the gateway (`server.py`)."""
