"""What the desk interfaces (`whisp record`, `whisp hotkey`) share: settings, the gateway
client and its event feed, audio sources, and one "turn" (record, send, wait for words).

Nothing here imports a server framework: the capture path stays light enough to start in
well under a second, and a desk machine needs no FastAPI to talk.
"""
