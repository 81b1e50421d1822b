"""HTTP face of the audio service: routers over the core (ingest, storage, recorders)."""
