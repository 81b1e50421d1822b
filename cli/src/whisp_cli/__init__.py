"""The `whisp` command."""
