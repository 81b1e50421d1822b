"""Pieces every WhisPTT service shares: events, the bus, config, logging."""
