"""Transcription workers: RecordingCompleted in, TranscriptReady/TranscriptionFailed out."""
