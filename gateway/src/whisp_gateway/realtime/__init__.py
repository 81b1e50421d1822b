"""The OpenAI Realtime transcription protocol and its sessions."""
