"""HTTP face of the agent service: routers over the runtime and the store, one per concern.

Errors are rendered by the shared handler set (`whisp_shared.http_errors`), so every answer
that is not a success carries `{code, message, retryable}` (and `Retry-After` for 429/503).
"""
