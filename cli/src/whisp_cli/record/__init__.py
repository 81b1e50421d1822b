"""`whisp record`: hold-to-talk in a terminal."""
