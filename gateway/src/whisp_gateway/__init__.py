"""Gateway: the one door for browsers and services."""
