"""Audio service: stores recordings and is the only publisher of RecordingCompleted."""
