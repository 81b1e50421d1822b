"""Agent service: runs the agent or pipeline a transcript asks for."""
